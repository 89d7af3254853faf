"""Migration between the patched QEMU and the unpatched QEMU 10.2.2 base.

With the defaults, virtio-blk requests held in the device (werror=stop)
migrate both ways in the legacy encoding.  With inflight-vmstate=on they
travel in the "virtio/inflight" subsection, which an unpatched
destination refuses: the migration fails cleanly, the source keeps its
requests, and a retry to a patched destination completes them."""

import os

import pytest

import vlmtest as vt

WRITERS = 4

pytestmark = pytest.mark.skipif(not os.path.exists(vt.QEMU_BASE),
                                reason="no base build (scripts/build.sh --base)")


def held_source(wd, img, binary, props=""):
    src = wd.add(vt.Guest(wd.path, "src", [vt.virtio_blk(img, props, True)], run="writer",
                          args=(WRITERS, 3, 1), binary=binary))
    vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                90, "the source to stop on the I/O error")
    return src


def destination(wd, img, name, binary, props=""):
    return wd.add(vt.Guest(wd.path, name, [vt.virtio_blk(img, props, False)], incoming=True,
                           run="writer", args=(WRITERS, 3, 1), binary=binary))


def finish(dst):
    dst.cmd("cont")
    m = dst.wait_console(r"^verify (\w+) (\d+)", 120)
    assert m.group(1) == "ok", dst.console()[-3000:]
    assert not any(ln.startswith("ioerr") for ln in dst.vlm_lines())


@pytest.mark.parametrize("direction", ["patched-to-base", "base-to-patched"])
def test_defaults_migrate_held_requests(direction):
    s_bin, d_bin = ((vt.QEMU, vt.QEMU_BASE) if direction == "patched-to-base"
                    else (vt.QEMU_BASE, vt.QEMU))
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        src = held_source(wd, img, s_bin)
        dst = destination(wd, img, "dst", d_bin)
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        finish(dst)


def test_inflight_vmstate_idle_to_base():
    """inflight-vmstate=on with nothing held sends no subsection."""
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(wd.path, "src", [vt.virtio_blk(img, ",inflight-vmstate=on", False)],
                              run="writer", args=(WRITERS, 3, 4)))
        src.wait_console(r"^idle", 60)
        dst = destination(wd, img, "dst", vt.QEMU_BASE)
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        m = dst.wait_console(r"^verify (\w+)", 120)
        assert m.group(1) == "ok"


def test_inflight_vmstate_to_base_fails_cleanly_then_retry():
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        src = held_source(wd, img, vt.QEMU, ",inflight-vmstate=on")
        old = destination(wd, img, "old", vt.QEMU_BASE)
        # With the return path the source learns that the destination
        # refused the stream (without it, precopy reports completion as
        # soon as everything is sent, and the source must be continued
        # by hand).
        info = vt.migrate(src, old, "unix:" + os.path.join(wd.path, "mig1"),
                          caps=("return-path",))
        assert info["status"] == "failed", info
        vt.wait_for(lambda: not old.alive(), 30, "the unpatched destination to exit")
        assert "VM subsection 'virtio/inflight' in 'virtio' does not exist" \
            in old.log(), old.log()
        # The source is intact: still stopped on the error, requests held.
        assert src.alive()
        assert src.cmd("query-status")["status"] == "io-error"
        new = destination(wd, img, "new", vt.QEMU, ",inflight-vmstate=on")
        info = vt.migrate(src, new, "unix:" + os.path.join(wd.path, "mig2"),
                          caps=("return-path",))
        assert info["status"] == "completed", info
        finish(new)


def vub_pair(wd, latency_ms, binary_dst, writers=8, seconds=8, delay=0,
             extra=",inflight-migration=on"):
    img = os.path.join(wd.path, "disk.img")
    vt.create_image(img)
    args = (writers, seconds, delay)
    b1 = wd.add(vt.ContribBlk(wd.path, "b1", img, os.path.join(wd.path, "b1.sock"),
                              latency_ms))
    b2 = wd.add(vt.ContribBlk(wd.path, "b2", img, os.path.join(wd.path, "b2.sock"),
                              latency_ms))
    src = wd.add(vt.Guest(wd.path, "src", [vt.vhost_user_blk_device(b1.vhost_sock,
                                                                     extra=extra)],
                          run="writer", args=args))
    # The base has no inflight-migration property; it needs none.
    dst = wd.add(vt.Guest(wd.path, "dst", [vt.vhost_user_blk_device(b2.vhost_sock)],
                          incoming=True, run="writer", args=args, binary=binary_dst))
    return src, dst, b1


def test_inflight_migration_idle_to_base():
    """vhost-user-blk with inflight-migration=on and an idle disk sends the
    stream 10.2.2 expects."""
    with vt.Workdir() as wd:
        src, dst, _ = vub_pair(wd, 500, vt.QEMU_BASE, delay=30)
        src.wait_console(r"^idle", 120)
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        assert dst.cmd("query-status")["status"] == "running"


def test_inflight_migration_to_base_fails_cleanly():
    """With requests in flight, 10.2.2 refuses the subsection; with the
    return path the source sees the failure, resumes, and its back-end
    resubmits the requests it had suspended: the data verifies."""
    with vt.Workdir() as wd:
        src, dst, b1 = vub_pair(wd, 1500, vt.QEMU_BASE)
        src.wait_console(r"^ready", 120)
        vt.wait_for(lambda: any(s[1] >= 4 for s in src.stats()), 60,
                    "requests in flight")
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"),
                          caps=("return-path",))
        assert info["status"] == "failed", info
        vt.wait_for(lambda: not dst.alive(), 30, "destination exit")
        assert "VM subsection 'vhost-user-blk/inflight' in 'vhost-user-blk' " \
            "does not exist" in dst.log(), dst.log()
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "running", 30,
                    "source running")
        m = src.wait_console(r"^verify (\w+) (\d+)", 120)
        assert m.group(1) == "ok" and int(m.group(2)) == 8, src.console()[-2000:]
        assert "vu_panic" not in b1.log()

"""virtio SUSPEND (virtio 1.4) with a real Linux guest.

The device-side statements are checked by tests/qtest/virtio-suspend-test
with a libqos driver, since no Linux driver uses the feature yet.  What a
real guest shows is what matters for turning the property on: Debian's
kernel sees bit 43 offered, does not accept it, and works as before; and
a guest that did not negotiate it migrates to and from an unpatched QEMU
10.2.2, whose virtio-blk has no such property."""

import os

import pytest

import vlmtest as vt

WRITERS = 4


def virtio_status(guest):
    """x-query-virtio-status of the virtio-blk device, as the guest left it."""
    path = [d["path"] for d in guest.cmd("x-query-virtio")
            if d["name"] == "virtio-blk"][0]
    return guest.cmd("x-query-virtio-status", path=path)


def suspend_bits(status):
    host = status["host-features"]["transports"]
    guest = status["guest-features"]["transports"]
    return (any(t.startswith("VIRTIO_F_SUSPEND") for t in host),
            any(t.startswith("VIRTIO_F_SUSPEND") for t in guest))


def test_linux_guest_ignores_suspend():
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        g = wd.add(vt.Guest(wd.path, "g", [vt.virtio_blk(img, ",suspend=on", werror=None)],
                            run="writer", args=(WRITERS, 6, 0)))
        # The guest powers off after the workload: look while it writes.
        vt.wait_for(lambda: any(s[2] > 0 for s in g.stats()), 120,
                    "writes")
        st = virtio_status(g)
        m = g.wait_console(r"^verify (\w+)", 120)
        assert m.group(1) == "ok", g.console()[-3000:]
        assert suspend_bits(st) == (True, False), st
        statuses = st["status"]["statuses"]
        assert any(s.startswith("VIRTIO_CONFIG_S_DRIVER_OK") for s in statuses)
        assert not any(s.startswith("VIRTIO_CONFIG_S_SUSPEND") for s in statuses)


@pytest.mark.skipif(not os.path.exists(vt.QEMU_BASE),
                    reason="no base build (scripts/build.sh --base)")
@pytest.mark.parametrize("direction", ["patched-to-base", "base-to-patched"])
def test_suspend_offered_not_negotiated_migrates(direction):
    """suspend=on changes nothing in the stream while the guest does not use
    it: migration to and from 10.2.2 with the writers running."""
    patched, base = (vt.QEMU, ""), (vt.QEMU_BASE, None)
    (s_bin, s_props), (d_bin, d_props) = (
        (patched, base) if direction == "patched-to-base" else (base, patched))
    s_props = ",suspend=on" if s_props is not None else ""
    d_props = ",suspend=on" if d_props is not None else ""
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(wd.path, "src", [vt.virtio_blk(img, s_props, werror=None)], run="writer",
                              args=(WRITERS, 6, 0), binary=s_bin))
        dst = wd.add(vt.Guest(wd.path, "dst", [vt.virtio_blk(img, d_props, werror=None)], incoming=True,
                              run="writer", args=(WRITERS, 6, 0), binary=d_bin))
        vt.wait_for(lambda: any(s[2] > 0 for s in src.stats()), 120,
                    "writes on the source")
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        if d_bin == vt.QEMU:
            assert suspend_bits(virtio_status(dst)) == (True, False)
        m = dst.wait_console(r"^verify (\w+)", 120)
        assert m.group(1) == "ok", dst.console()[-3000:]

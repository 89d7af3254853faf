"""virtio-scsi requests held by a scsi-hd with werror=stop travel in the
migration stream and complete exactly once on the destination: in the
legacy VirtQueueElementOld encoding (in the SCSI device's section) and in
the virtio core's "virtio/inflight" subsection (inflight-vmstate=on), where
the SCSI device's section only names each request's queue and head.  A real
Linux guest writes and verifies its data."""

import os

import pytest

import vlmtest as vt


def scsi(img, failing, props):
    """scsi-hd on img behind virtio-scsi-pci; writes fail when failing."""
    return vt.blockdev(img, failing) + [
        "-device", "virtio-scsi-pci,id=scsi0,addr=04.0%s" % props,
        "-device", "scsi-hd,drive=disk,bus=scsi0.0,werror=stop"]


@pytest.mark.parametrize("encoding", ["legacy", "vmstate"])
def test_stopped_requests_migrate(encoding):
    props = ",inflight-vmstate=%s" % ("on" if encoding == "vmstate" else "off")
    writers = 6
    args = (writers, 3, 2, "sda")
    with vt.Workdir() as wd:
        d = wd.path
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(d, "src", [scsi(img, True, props)], run="writer",
                              args=args))
        dst = wd.add(vt.Guest(d, "dst", [scsi(img, False, props)], incoming=True,
                              run="writer", args=args))
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    90, "the source to stop on the I/O error")
        info = vt.migrate(src, dst, "unix:" + os.path.join(d, "mig"))
        assert info["status"] == "completed", info
        dst.cmd("cont")
        m = dst.wait_console(r"^verify (\w+) (\d+) (\d+)", 120)
        assert m.group(1) == "ok", dst.console()[-3000:]
        assert int(m.group(2)) == writers
        assert not any(ln.startswith("ioerr") for ln in dst.vlm_lines())
        assert "dropped" not in dst.log(), dst.log()
        st = dst.stats()
        assert st and st[-1][2] >= writers, st[-3:]


def test_vmstate_to_base_fails_cleanly():
    """An unpatched destination refuses the subsection before it reads the
    SCSI device's request data, and does not crash."""
    if not os.path.exists(vt.QEMU_BASE):
        pytest.skip("no base build")
    with vt.Workdir() as wd:
        d = wd.path
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(d, "src", [scsi(img, True, ",inflight-vmstate=on")],
                              run="writer", args=(4, 3, 2, "sda")))
        dst = wd.add(vt.Guest(d, "dst", [scsi(img, False, "")], incoming=True,
                              binary=vt.QEMU_BASE))
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    90, "the source to stop on the I/O error")
        info = vt.migrate(src, dst, "unix:" + os.path.join(d, "mig"),
                          caps=("return-path",))
        assert info["status"] == "failed", info
        vt.wait_for(lambda: not dst.alive(), 30, "destination exit")
        assert "virtio/inflight" in dst.log(), dst.log()
        assert "Assertion" not in dst.log() and dst.exitcode() == 1, dst.log()

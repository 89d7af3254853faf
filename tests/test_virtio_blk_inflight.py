"""virtio-blk requests that are held in the device (werror=stop) travel in
the migration stream and complete exactly once on the destination: in the
legacy VirtQueueElementOld encoding and in the virtio core's compact
"virtio/inflight" subsection (inflight-vmstate=on), with split and packed
rings.  A real Linux guest writes and verifies its data."""

import os

import pytest

import vlmtest as vt


@pytest.mark.parametrize("encoding", ["legacy", "vmstate"])
@pytest.mark.parametrize("ring", ["split", "packed"])
def test_stopped_requests_migrate(encoding, ring):
    props = ",inflight-vmstate=%s" % ("on" if encoding == "vmstate" else "off")
    if ring == "packed":
        props += ",packed=on"
    writers = 6
    with vt.Workdir() as wd:
        d = wd.path
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(d, "src", [vt.virtio_blk(img, props, True)], run="writer",
                              args=(writers, 3, 2)))
        dst = wd.add(vt.Guest(d, "dst", [vt.virtio_blk(img, props, False)], incoming=True,
                              run="writer", args=(writers, 3, 2)))
        # The first writes fail: the VM stops with the requests parked in
        # the device, none of them completed to the guest.
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    90, "the source to stop on the I/O error")
        held = src.stats()
        info = vt.migrate(src, dst, "unix:" + os.path.join(d, "mig"))
        assert info["status"] == "completed", info
        assert dst.cmd("query-status")["status"] != "running"
        dst.cmd("cont")
        m = dst.wait_console(r"^verify (\w+) (\d+) (\d+)", 120)
        assert m.group(1) == "ok", dst.console()[-3000:]
        assert int(m.group(2)) == writers
        lines = dst.vlm_lines()
        assert not any(ln.startswith("ioerr") for ln in lines), lines
        # The requests that were held completed on the destination: the
        # writers moved on past their first block.
        st = dst.stats()
        assert st and st[-1][2] >= writers, (held, st[-3:])

"""Live migration of a real Linux guest on vhost-user-blk served by
qemu-storage-daemon, both ends on this machine, under TCG."""

import os

import pytest

import vlmtest as vt


def setup_pair(wd, iops=None, writers=8, seconds=6, delay=0, extra=""):
    d = wd.path
    img = os.path.join(d, "disk.img")
    vt.create_image(img)
    sq = wd.add(vt.StorageDaemon(d, "qsd-src", img, os.path.join(d, "s.sock"), iops=iops))
    dq = wd.add(vt.StorageDaemon(d, "qsd-dst", img, os.path.join(d, "d.sock"), iops=iops))
    args = (writers, seconds, delay)
    src = wd.add(vt.Guest(d, "src", [vt.vhost_user_blk_device(sq.vhost_sock, extra=extra)],
                          run="writer", args=args))
    src.wait_console(r"^ready", 120)
    dst = wd.add(vt.Guest(d, "dst", [vt.vhost_user_blk_device(dq.vhost_sock, extra=extra)],
                          incoming=True, run="writer", args=args))
    return src, dst, sq, dq


def test_migrate_idle_disk_then_write():
    """The basic path: migrate while the disk is idle, then the guest writes
    and verifies its data through the destination's back-end."""
    with vt.Workdir() as wd:
        src, dst, _, _ = setup_pair(wd, delay=4)
        src.wait_console(r"^idle", 60)
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        assert not any(ln.startswith("start") for ln in src.vlm_lines())
        m = dst.wait_console(r"^verify (\w+) (\d+) (\d+)", 120)
        assert m.group(1) == "ok" and int(m.group(2)) == 8, dst.console()[-2000:]
        assert not any(ln.startswith("ioerr") for ln in dst.vlm_lines())


@pytest.mark.parametrize("inflight_migration", [False, True])
def test_migrate_with_requests_in_flight(inflight_migration):
    """Requests held by a slow back-end (a throttle group) at switchover
    complete on the destination.  Without inflight-migration the export
    completes them before GET_VRING_BASE returns (unpatched 10.2.2 lost
    them: the source daemon logged vu_panic and the guest hung); with it,
    they stay in the inflight region and the destination's daemon
    resubmits them."""
    extra = ",inflight-migration=on" if inflight_migration else ""
    with vt.Workdir() as wd:
        src, dst, sq, dq = setup_pair(wd, iops=10, writers=8, seconds=6, extra=extra)
        vt.wait_for(lambda: any(s[1] >= 4 for s in src.stats()[-1:]), 60,
                    "requests in flight")
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        m = dst.wait_console(r"^verify (\w+) (\d+)", 60)
        assert m.group(1) == "ok" and int(m.group(2)) == 8, dst.console()[-2000:]
        assert not any(ln.startswith("ioerr") for ln in dst.vlm_lines())
        for q in (sq, dq):
            assert "vu_panic" not in q.log(), q.log()

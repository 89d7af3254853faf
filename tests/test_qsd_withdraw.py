"""qemu-storage-daemon's vhost-user-blk export at a stop that skips the
drain: the requests still waiting in its throttle group are withdrawn and
move with the VM; only those already issued are waited for.

The destination's daemon writes to a qcow2 overlay over the source's image,
so the source's image shows what the source daemon wrote, and nothing else:
it must not change from the end of the migration to the exit of the source
daemon, which a withdrawn request issued late would do."""

import hashlib
import os
import re

import pytest

import vlmtest as vt

WRITERS = 16
BLOCKS = 64                      # per writer, as in tests/guest/writer.sh
WITHDRAWN = re.compile(r"blk_co_withdraw .*withdrawn 1")


AREA = WRITERS * BLOCKS * 4096


def written_area(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(AREA)).hexdigest()


def done_on_both(img, overlay):
    """How many requests the destination did that the source did too: the
    blocks its overlay holds with what the source's image holds there.
    The destination writes to blocks the source never wrote, except when
    it resubmits a request that was in flight at the stop."""
    with open(img, "rb") as f:
        src = f.read(AREA)
    return sum(1 for b, data in vt.overlay_blocks(overlay, AREA).items()
               if data.startswith(b"vlm-block") and
               src[b * 4096:(b + 1) * 4096] == data)


class Pair:
    def __init__(self, wd, iops, num_queues, on, seconds=24, issued_iops=None):
        """The destination's daemon is throttled to iops or issued_iops, so
        that its writers do not write a block twice and overwrite what it
        resubmitted.  The writers run for `seconds`: long enough to be busy
        still at the switchover of a loaded machine (with 14 s, a clean
        make check once found nothing to withdraw at 20 IOPS)."""
        d = wd.path
        self.wd = wd
        self.img = os.path.join(d, "disk.img")
        self.overlay = overlay = os.path.join(d, "dst.qcow2")
        vt.create_image(self.img)
        vt.create_overlay(overlay, self.img)
        self.sq = wd.add(vt.StorageDaemon(d, "qsd-src", self.img,
                                          os.path.join(d, "s.sock"), iops=iops,
                                          num_queues=num_queues,
                                          trace=("blk_co_withdraw",),
                                          issued_iops=issued_iops))
        self.dq = wd.add(vt.StorageDaemon(d, "qsd-dst", overlay,
                                          os.path.join(d, "d.sock"),
                                          iops=iops or issued_iops,
                                          num_queues=num_queues, fmt="qcow2"))
        # Two vCPUs: the writers are processes forked in the guest, and
        # with one vCPU a slow (TCG) machine forks them too slowly to fill
        # the throttle group.
        smp = 2

        def guest(name, sock, incoming):
            dev = vt.vhost_user_blk_device(sock, num_queues=num_queues,
                                           inflight_migration=on)
            return wd.add(vt.Guest(d, name, [dev], incoming=incoming, smp=smp,
                                   run="writer", args=(WRITERS, seconds, 0)))
        self.src = guest("src", self.sq.vhost_sock, False)
        self.src.wait_console(r"^ready", 120)
        self.dst = guest("dst", self.dq.vhost_sock, True)
        # Most writers wait in the throttle group
        vt.wait_for(lambda: any(s[1] >= WRITERS // 2
                                for s in self.src.stats()[-1:]),
                    60, "requests in flight")

    def withdrawn(self):
        return len(WITHDRAWN.findall(self.sq.log()))

    def source_daemon_quit(self):
        """Stop the source VM, then its daemon, and return its log."""
        self.src.stop()
        self.sq.stop()
        return self.sq.log()

    def migrate(self):
        """Migrate, check that the destination verifies its data, that the
        source's image did not change after the switchover and that no
        request was done on both sides; return how many the source
        withdrew."""
        info = vt.migrate(self.src, self.dst,
                          "unix:" + os.path.join(self.wd.path, "mig"))
        assert info["status"] == "completed", info
        at_switchover = written_area(self.img)
        assert_verified(self.dst)
        log = self.source_daemon_quit()
        assert written_area(self.img) == at_switchover, \
            "the source daemon wrote after its stop"
        # The source completed to the guest what it had issued, and the
        # destination resubmitted what it withdrew: none was done twice.
        self.dst.stop()
        self.dq.stop()
        assert done_on_both(self.img, self.overlay) == 0
        assert "vu_panic" not in log + self.dq.log()
        return self.withdrawn()


def assert_verified(guest):
    m = guest.wait_console(r"^verify (\w+) (\d+)", 240)
    assert m.group(1) == "ok" and int(m.group(2)) == WRITERS, \
        guest.console()[-2000:]
    assert not any(ln.startswith("ioerr") for ln in guest.vlm_lines())
    # A request completed twice is not a head the driver knows
    assert "not a head" not in guest.console(), guest.console()[-2000:]


@pytest.mark.parametrize("iops,num_queues", [(2, 1), (2, 4), (20, 1), (20, 4)])
def test_queued_requests_move_with_the_vm(iops, num_queues):
    """Throttled to iops, the source daemon withdraws what waits in its
    group at the stop, and the destination does every request once."""
    with vt.Workdir() as wd:
        p = Pair(wd, iops, num_queues, on=True)
        assert p.migrate() >= 1, p.sq.log()[-2000:]


def test_issued_requests_complete_on_the_source():
    """Requests that wait below the format node have been issued: the
    stop cannot withdraw them, waits for them, and completes them to the
    guest before it answers, so the destination does not do them again."""
    with vt.Workdir() as wd:
        p = Pair(wd, None, 1, on=True, issued_iops=10)
        assert p.migrate() == 0, p.sq.log()[-2000:]


def test_without_the_feature_the_export_drains():
    """inflight-migration=off: GET_VRING_BASE drains, as it always did, and
    the source completes every request."""
    with vt.Workdir() as wd:
        p = Pair(wd, 10, 1, on=False)
        assert p.migrate() == 0, p.sq.log()[-2000:]


def test_cancelled_migration_resubmits_what_was_withdrawn():
    """The migration fails after the stop: the source resumes, and its
    daemon resubmits the requests it withdrew, each once."""
    with vt.Workdir() as wd:
        p = Pair(wd, 10, 1, on=True)
        vt.set_capabilities(("pause-before-switchover",), p.src, p.dst)
        uri = "unix:" + os.path.join(wd.path, "mig")
        vt.start_migration(p.src, p.dst, uri)
        vt.wait_for(lambda: p.src.cmd("query-migrate")["status"] == "pre-switchover",
                    120, "pre-switchover")
        assert p.withdrawn() >= 1, p.sq.log()[-2000:]
        p.dst.kill()
        p.src.cmd("migrate_cancel")
        vt.wait_migration(p.src, 30)
        vt.wait_for(lambda: p.src.cmd("query-status")["status"] == "running", 30,
                    "source running")
        assert_verified(p.src)
        assert "vu_panic" not in p.sq.log()

"""vhost-user-blk requests in flight through live migration, stops and
reconnections: a real Linux guest writing and verifying its data under TCG,
on contrib/vhost-user-blk with --latency, so that requests really stay in
the back-end for a while."""

import os

import pytest

import vlmtest as vt

LATENCY_MS = 1500


class Setup(vt.Setup):
    def __init__(self, wd, writers=8, seconds=8, latency_ms=LATENCY_MS,
                 inflight_migration=True, src_extra=(), delay=0):
        super().__init__(wd, "64M")
        self.args = (writers, seconds, delay)
        self.latency_ms = latency_ms
        self.inflight_migration = inflight_migration
        self.n = 0
        self.src_blk = self.backend(extra=src_extra)
        self.src = self.guest("src", [self.device(self.src_blk, inflight_migration)],
                              run="writer", args=self.args)

    def backend(self, latency_ms=None, extra=()):
        self.n += 1
        return self.contrib_blk("vub%d" % self.n,
                                self.latency_ms if latency_ms is None else latency_ms,
                                extra)

    def destination(self, backend=None, inflight_migration=None):
        b = backend or self.backend()
        im = self.inflight_migration if inflight_migration is None else inflight_migration
        self.n += 1
        return b, self.guest("dst%d" % self.n, [self.device(b, im)], incoming=True,
                             run="writer", args=self.args)

    @staticmethod
    def device(backend, inflight_migration):
        # Off is the default: leave the property out, as a user would.
        return vt.vhost_user_blk_device(backend.vhost_sock,
                                        inflight_migration=inflight_migration or None)

    def wait_in_flight(self, guest, n=4):
        """Until the guest sees at least n requests in flight."""
        start = len(guest.stats())
        vt.wait_for(lambda: any(s[1] >= n for s in guest.stats()[start:]), 60,
                    "%d requests in flight" % n)


def assert_verified(guest, writers=8):
    m = guest.wait_console(r"^verify (\w+) (\d+) (\d+)", 120)
    assert m.group(1) == "ok" and int(m.group(2)) == writers, guest.console()[-2000:]
    assert not any(ln.startswith("ioerr") for ln in guest.vlm_lines())


def assert_no_panic(*backends):
    for b in backends:
        assert "vu_panic" not in b.log(), b.log()


@pytest.mark.parametrize("inflight_migration", [
    pytest.param(True, id="on", marks=pytest.mark.asan),
    pytest.param(False, id="off"),
])
def test_migrate_with_requests_in_flight(inflight_migration):
    """Requests held by the source's back-end at switchover are resubmitted
    by the destination's back-end, and the guest's data verifies.  Without
    inflight-migration the back-end completes them before GET_VRING_BASE
    returns instead (the downtime cost bench/ measures): nothing is lost
    either."""
    with vt.Workdir() as wd:
        s = Setup(wd, inflight_migration=inflight_migration)
        dst_blk, dst = s.destination()
        s.src.wait_console(r"^ready", 120)
        s.wait_in_flight(s.src)
        info = vt.migrate(s.src, dst, "unix:" + os.path.join(wd.path, "mig"))
        assert info["status"] == "completed", info
        assert_verified(dst)
        assert_no_panic(s.src_blk, dst_blk)


def test_migrate_repeatedly_under_load():
    """Three migrations in a row, each with requests in flight."""
    with vt.Workdir() as wd:
        s = Setup(wd, seconds=30)
        s.src.wait_console(r"^ready", 120)
        cur, blks = s.src, [s.src_blk]
        for i in range(3):
            b, nxt = s.destination()
            blks.append(b)
            s.wait_in_flight(cur)
            info = vt.migrate(cur, nxt, "unix:" + os.path.join(wd.path, "mig%d" % i))
            assert info["status"] == "completed", info
            cur.stop()
            cur = nxt
        assert_verified(cur)
        assert_no_panic(*blks)


@pytest.mark.asan
def test_cancel_at_switchover_resumes_source():
    """The source stops its back-end without draining, the destination dies
    before the switchover and the migration is cancelled: the source resumes
    and its back-end resubmits the requests it had suspended."""
    with vt.Workdir() as wd:
        s = Setup(wd)
        dst_blk, dst = s.destination()
        s.src.wait_console(r"^ready", 120)
        caps = ("pause-before-switchover",)
        s.wait_in_flight(s.src)
        for c in caps:
            for p in (s.src, dst):
                p.cmd("migrate-set-capabilities",
                      capabilities=[{"capability": c, "state": True}])
        uri = "unix:" + os.path.join(wd.path, "mig")
        dst.cmd("migrate-incoming", uri=uri)
        s.src.cmd("migrate", uri=uri)
        vt.wait_for(lambda: s.src.cmd("query-migrate")["status"] == "pre-switchover",
                    120, "pre-switchover")
        # The source VM and its back-end's queues are stopped now.
        dst.kill()
        s.src.cmd("migrate_cancel")
        vt.wait_for(lambda: s.src.cmd("query-migrate")["status"] == "cancelled",
                    30, "cancelled")
        vt.wait_for(lambda: s.src.cmd("query-status")["status"] == "running", 30,
                    "source running")
        assert_verified(s.src)
        assert_no_panic(s.src_blk)


def test_destination_back_end_without_inflight_fd():
    """A destination whose back-end cannot take requests over fails the
    incoming migration with a clear error; the source keeps running and
    completes its requests itself."""
    with vt.Workdir() as wd:
        s = Setup(wd)
        # Unpatched 10.2.2's export has no INFLIGHT_SHMFD
        qsd = wd.add(vt.StorageDaemon(wd.path, "qsd", s.img,
                                      os.path.join(wd.path, "qsd.sock"),
                                      binary=vt.QSD_BASE))
        _, dst = s.destination(backend=qsd)
        s.src.wait_console(r"^ready", 120)
        s.wait_in_flight(s.src)
        info = vt.migrate(s.src, dst, "unix:" + os.path.join(wd.path, "mig"),
                          caps=("return-path",))
        assert info["status"] == "failed", info
        vt.wait_for(lambda: not dst.alive(), 30, "destination exit")
        assert "cannot take over requests in flight" in dst.log(), dst.log()
        assert s.src.cmd("query-status")["status"] == "running"
        assert_verified(s.src)
        assert_no_panic(s.src_blk)


def test_back_end_restart_with_requests_in_flight():
    """The back-end process dies with requests in flight; a new one on the
    same socket resubmits them from the inflight region after QEMU
    reconnects."""
    with vt.Workdir() as wd:
        s = Setup(wd)
        s.src.wait_console(r"^ready", 120)
        s.wait_in_flight(s.src)
        s.src_blk.kill()
        os.unlink(s.src_blk.vhost_sock)
        wd.add(vt.ContribBlk(wd.path, "vub-restarted", s.img, s.src_blk.vhost_sock,
                             LATENCY_MS))
        assert_verified(s.src)


def test_back_end_dies_while_running_then_recovers():
    """The back-end dies while the VM runs with requests in flight: QEMU's
    view of the rings is then reset, and no longer agrees with the inflight
    region, so a migration is refused with a clear error and the source runs
    on: a migration blocker says why.  Once a new back-end is up, it
    resubmits the requests from the region, and a migration succeeds."""
    with vt.Workdir() as wd:
        s = Setup(wd, seconds=12)
        s.src.wait_console(r"^ready", 120)
        s.wait_in_flight(s.src)
        s.src_blk.kill()
        vt.wait_for(lambda: "end-of-file" in s.src.log(), 30,
                    "QEMU to see the back-end gone")
        _, dst = s.destination()
        r = s.src.cmd_raw("migrate", uri="unix:" + os.path.join(wd.path, "mig"))
        assert "disconnected while it had requests in flight" in \
            r["error"]["desc"], r
        assert s.src.cmd("query-status")["status"] == "running"
        dst.stop()
        os.unlink(s.src_blk.vhost_sock)
        wd.add(vt.ContribBlk(wd.path, "vub-restarted", s.img, s.src_blk.vhost_sock,
                             LATENCY_MS))
        start = len(s.src.stats())
        vt.wait_for(lambda: any(st[2] > 0 for st in s.src.stats()[start:]), 60,
                    "writes completing again")
        dst_blk2, dst2 = s.destination()
        s.wait_in_flight(s.src)
        info = vt.migrate(s.src, dst2, "unix:" + os.path.join(wd.path, "mig2"))
        assert info["status"] == "completed", info
        assert_verified(dst2)
        assert_no_panic(dst_blk2)


def test_region_outlives_the_back_end():
    """A back-end with GET_VRING_BASE_INFLIGHT alone (--no-skip-drain, as
    for QEMU 11.0) leaves its requests in flight when the VM stops, and
    then dies.  The region it shared is QEMU's too: the VM still migrates,
    and the destination's back-end resubmits the requests when the VM
    continues there."""
    with vt.Workdir() as wd:
        s = Setup(wd, seconds=12, src_extra=("--no-skip-drain",))
        s.src.wait_console(r"^ready", 120)
        s.wait_in_flight(s.src)
        s.src.cmd("stop")
        s.src_blk.kill()
        vt.wait_for(lambda: "end-of-file" in s.src.log(), 30,
                    "QEMU to see the back-end gone")
        dst_blk, dst = s.destination()
        info = vt.migrate(s.src, dst, "unix:" + os.path.join(wd.path, "mig"),
                          caps=("return-path",))
        assert info["status"] == "completed", info
        dst.cmd("cont")
        assert_verified(dst)
        assert_no_panic(dst_blk)


def migrate_to_file(guest, path):
    guest.cmd("migrate", uri="file:" + path)
    vt.wait_for(lambda: guest.cmd("query-migrate")["status"] in
                ("completed", "failed"), 60, "migration to file")
    assert guest.cmd("query-migrate")["status"] == "completed"
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("skip_drain", [True, False], ids=["skip-drain", "11.0"])
def test_only_a_migration_leaves_requests_in_flight(skip_drain):
    """With GET_VRING_BASE_SKIP_DRAIN the front-end chooses per stop: a VM
    stop finishes the back-end's requests (nothing left for the stream),
    the stop of a migration does not (the region travels).  A back-end
    with GET_VRING_BASE_INFLIGHT alone leaves them in flight at any stop."""
    sub = b"vhost-user-blk/inflight"
    with vt.Workdir() as wd:
        s = Setup(wd, seconds=30,
                  src_extra=() if skip_drain else ("--no-skip-drain",))
        s.src.wait_console(r"^ready", 120)
        s.wait_in_flight(s.src)
        s.src.cmd("stop")
        stopped = migrate_to_file(s.src, os.path.join(wd.path, "stopped.mig"))
        assert (sub in stopped) == (not skip_drain)
        s.src.cmd("cont")
        s.wait_in_flight(s.src)
        live = migrate_to_file(s.src, os.path.join(wd.path, "live.mig"))
        assert sub in live


def test_fresh_region_with_requests_in_flight():
    """An idle VM migrates (nothing in flight, so no region travels) and
    its destination starts with a new inflight region, on rings that have
    been used for a while.  Its requests are then migrated before the
    first one completes: the new region must carry the used ring's index
    from the start, or its last batch looks unfinished and the
    destination's back-end would drop a request in flight."""
    with vt.Workdir() as wd:
        s = Setup(wd, seconds=10, latency_ms=200, delay=8)
        s.src.wait_console(r"^idle", 120)
        mid_blk, mid = s.destination(backend=s.backend(latency_ms=5000))
        info = vt.migrate(s.src, mid, "unix:" + os.path.join(wd.path, "mig1"))
        assert info["status"] == "completed", info
        mid.wait_console(r"^start", 60)
        s.wait_in_flight(mid)
        dst_blk, dst = s.destination()
        info = vt.migrate(mid, dst, "unix:" + os.path.join(wd.path, "mig2"))
        assert info["status"] == "completed", info
        assert_verified(dst)
        assert_no_panic(mid_blk, dst_blk)

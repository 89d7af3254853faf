#!/usr/bin/env python3
"""Baseline: what QEMU 10.2.2 with virtiofsd 1.13.2 does when the VM
migrates while virtiofsd holds a FUSE request that blocks.

The request: a real guest (TCG) appends a line to a file on its virtiofs
mount while a host process holds a read lease on that file (F_SETLEASE),
so virtiofsd's open(2) for writing waits until the holder lets go, which
the benchmark does HOLD_S seconds after it started the migration (the
kernel would break the lease after /proc/sys/fs/lease-break-time, 45 s by
default).  A lease is the one thing that blocks virtiofsd 1.13.2
deterministically from the host: FIFOs on virtiofs are the guest's own
pipes, and it offers no POSIX or flock locks
(docs/research-vhost-user-fs-inflight.md, section 4).

For virtiofsd's serial mode (its default, --thread-pool-size=0) and a
thread pool, with the request blocked and with nothing blocked, one run
prints: how long the longest QMP command on the source waited during the
migration (the main loop's freeze), the switchover downtime and total
time from query-migrate, whether the guest's append returned on the
destination, and how many times the line reached the host's file.
Writes docs/bench-virtiofs-blocked-request.md with --write-docs.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
TAG = "vlmfs"
FILE = "leased.txt"
HOLD_S = 10
# How long the destination's guest gets to finish its append after the
# lease is gone.
APPEND_WAIT_S = 60

# Holds a read lease on argv[1] until a line arrives on stdin.  A lease
# break sends the holder SIGIO, whose default action would kill it.
HOLDER = r"""
import fcntl, os, signal, sys
signal.signal(signal.SIGIO, signal.SIG_IGN)
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
print("held", flush=True)
sys.stdin.readline()
fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
print("released", flush=True)
"""


class Lease:
    def __init__(self, path):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, path],
                                     stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "held":
            raise vt.TestError("no lease on %s" % path)
        self.released_at = None

    def release(self):
        if self.released_at is None:
            self.released_at = time.monotonic()
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            self.proc.wait(10)


def blocked_open(fsd):
    """Whether virtiofsd has an Open it has not replied to."""
    return any(op == "Open" and ok is None for op, _, ok in fsd.requests())


def measure(qemu, pool, blocked):
    with vt.Workdir() as wd:
        s = vt.Setup(wd)
        share = s.path("share")
        os.mkdir(share)
        path = os.path.join(share, FILE)
        with open(path, "w") as f:
            f.write("vlm-host\n")
        extra = ["--migration-mode", "find-paths", "--log-level", "debug"]
        if pool:
            extra += ["--thread-pool-size", str(pool)]
        lease = Lease(path) if blocked else None
        timer = None
        try:
            src_fsd = s.virtiofsd("vfs-src", share, extra)
            dst_fsd = s.virtiofsd("vfs-dst", share, extra)
            token = "bench"
            src = s.guest("src", [vt.vhost_user_fs_device(src_fsd.vhost_sock, TAG)],
                          run="fsopen", args=(TAG, FILE, token), binary=qemu,
                          # when the migration changed state, in src.log
                          extra=("-msg", "timestamp=on", "-trace", "migrate_set_state"))
            src.wait_console(r"^fsopen mounted", 180)
            if blocked:
                vt.wait_for(lambda: blocked_open(src_fsd), 60, "the blocked open")
                time.sleep(1)
                assert blocked_open(src_fsd) and "fsopen append" not in src.console()
            else:
                src.wait_console(r"^fsopen append ok", 60)
            dst = s.guest("dst", [vt.vhost_user_fs_device(dst_fsd.vhost_sock, TAG)],
                          incoming=True, run="fsopen", args=(TAG, FILE, token),
                          binary=qemu)
            uri = "unix:" + s.path("mig")
            vt.set_capabilities(("return-path",), src, dst)
            dst.cmd("migrate-incoming", uri=uri)
            t0 = time.monotonic()
            src.cmd("migrate", uri=uri)
            timer = threading.Timer(HOLD_S, lease.release) if lease else None
            if timer:
                timer.start()
            worst, worst_in, status = 0.0, None, "setup"
            while True:
                t = time.monotonic()
                info = src.cmd("query-migrate")
                if time.monotonic() - t > worst:
                    # the state the migration was in when the query was sent
                    worst, worst_in = time.monotonic() - t, status
                status = info.get("status")
                if info.get("status") in vt.ENDED:
                    break
                if time.monotonic() - t0 > HOLD_S + 120:
                    raise vt.TestError("the migration did not end: %s" % info)
                time.sleep(0.05)
            ended = time.monotonic() - t0
            if timer:
                timer.join()
            # What the guest does on the destination once nothing blocks.
            outcome = "no append"
            if not blocked:
                outcome = "returned before the migration"
            elif "fsopen append" in src.console():
                outcome = "returned on the source, before the switchover"
            elif info["status"] == "completed":
                try:
                    m = dst.wait_console(r"^fsopen append (.*)", APPEND_WAIT_S)
                    outcome = m.group(1)
                except vt.TestError:
                    outcome = "never returned (%d s after the lease went)" % APPEND_WAIT_S
            else:
                outcome = "source: " + info.get("error-desc", info["status"])
            with open(path) as f:
                appended = f.read().count("vlm-append %s" % token)
            return {
                "status": info["status"],
                "qmp_ms": worst * 1000,
                "qmp_in": worst_in,
                "downtime_ms": info.get("downtime"),
                "total_ms": info.get("total-time"),
                "ended_s": ended,
                "outcome": outcome,
                "appended": appended,
            }
        finally:
            if timer:
                timer.cancel()
            if lease:
                lease.release()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--qemu", choices=("base", "patched"), default="base",
                    help="unpatched 10.2.2 (scripts/build.sh --base) or the series")
    ap.add_argument("--pool", type=int, default=4,
                    help="virtiofsd --thread-pool-size for the pool rows")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    qemu = vt.QEMU_BASE if args.qemu == "base" else vt.QEMU
    rows = []
    for pool in (0, args.pool):
        for blocked in (True, False):
            r = measure(qemu, pool, blocked)
            r["mode"] = "pool of %d" % pool if pool else "serial"
            r["blocked"] = "open blocked %d s" % HOLD_S if blocked else "idle"
            rows.append(r)
            print("%-10s %-18s %s" % (r["mode"], r["blocked"], r), flush=True)
    head = ("| virtiofsd | request | migration | longest QMP wait (sent in) "
            "| downtime | total | the guest's append | lines on the host |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n")
    table = head + "".join(
        "| %s | %s | %s | %.0f ms (%s) | %s ms | %s ms | %s | %d |\n"
        % (r["mode"], r["blocked"], r["status"], r["qmp_ms"], r["qmp_in"],
           r["downtime_ms"], r["total_ms"], r["outcome"], r["appended"])
        for r in rows)
    print()
    print("QEMU: %s (%s); virtiofsd: %s" % (args.qemu, qemu, vt.VIRTIOFSD))
    print(table)
    if args.write_docs:
        doc = os.path.join(TOP, "docs", "bench-virtiofs-blocked-request.md")
        with open(doc) as f:
            text = f.read()
        start = text.index("<!-- table -->") + len("<!-- table -->\n")
        end = text.index("<!-- /table -->")
        with open(doc, "w") as f:
            f.write(text[:start] + table + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Migration downtime of vhost-user-blk on qemu-storage-daemon throttled
to a few IOPS, with inflight-migration on and off and with the disk idle,
in one run.

A real guest (TCG) keeps 16 O_DIRECT writers busy on a vhost-user-blk
export whose node is behind a throttle group, so that nearly all of them
wait in the group when the migration starts.  With inflight-migration on,
the source daemon withdraws the requests the group has not let through and
waits only for those already issued, completing them to the guest; with it off, the stop drains, and
waits for the group to let every request through.  The baseline is the
same set-up migrated while the disk is idle.

Each figure is the median of migrations in a row of one VM, from
query-migrate's downtime: nine for on and idle, whose few ms vary with the
RAM sent in the stop, three for off, which takes seconds.  Prints a table and the ratios for the targets:
on within 1.5x of idle (or within 1 ms: query-migrate gives whole ms),
off at least 10x on at 2 IOPS.
Writes docs/bench-downtime-qsd.{md,png} with --write-docs.
"""

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
WRITERS = 16
DOWNTIME_LIMIT_MS = 20          # as in bench/downtime_vhost_user_blk.py
BANDWIDTH = 10 << 30


HOPS_FAST = 9
HOPS_OFF = 3


# The source's stop for the switchover, timed from its trace: from the stop
# notifiers (the device's GET_VRING_BASE and its wait) to the VM stopped.
TRACE = ("-msg", "timestamp=on", "-trace", "vm_state_notify",
         "-trace", "migration_completion_vm_stop")
STOP_RE = re.compile(r"^(\S+) vm_state_notify running 0 reason \d+ "
                     r"\(finish-migrate\)\n(?:.*\n)*?(\S+) "
                     r"migration_completion_vm_stop", re.M)


def stop_ms(log):
    """How long the last switchover's stop took in the source, in ms."""
    m = list(STOP_RE.finditer(log))[-1]
    t0, t1 = (datetime.datetime.fromisoformat(t.rstrip("Z"))
              for t in m.groups())
    return (t1 - t0).total_seconds() * 1000


def measure(iops, on, idle=False, hops=HOPS_FAST):
    """Median downtime and median stop time (ms) of `hops` migrations in a
    row of one VM."""
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        args = (WRITERS, 3600, 3600 if idle else 0)

        def guest(n, incoming):
            q = wd.add(vt.StorageDaemon(wd.path, "q%d" % n, img,
                                        os.path.join(wd.path, "q%d.sock" % n),
                                        iops=iops))
            dev = vt.vhost_user_blk_device(q.vhost_sock, inflight_migration=on)
            return wd.add(vt.Guest(wd.path, "g%d" % n, [dev], incoming=incoming,
                                   run="writer", args=args, extra=TRACE))
        cur = guest(0, False)
        cur.wait_console(r"^idle" if idle else r"^ready", 120)
        downtimes, stops = [], []
        for hop in range(hops):
            nxt = guest(hop + 1, True)
            cur.cmd("migrate-set-parameters", **{
                "max-bandwidth": BANDWIDTH,
                "downtime-limit": DOWNTIME_LIMIT_MS})
            if not idle:
                start = len(cur.stats())
                vt.wait_for(lambda: any(st[1] >= WRITERS * 3 // 4
                                        for st in cur.stats()[start:]),
                            60, "writers waiting in the throttle group")
            info = vt.migrate(cur, nxt, "unix:" + os.path.join(wd.path, "m%d" % hop),
                              timeout=300)
            if info["status"] != "completed":
                raise vt.TestError("migration %s: %s" % (info["status"], info))
            downtimes.append(info["downtime"])
            stops.append(stop_ms(cur.log()))
            cur.stop()
            cur = nxt
        return statistics.median(downtimes), statistics.median(stops)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iops", default="2,20")
    ap.add_argument("--write-docs", action="store_true")
    opts = ap.parse_args()
    rows = []
    for iops in [int(x) for x in opts.iops.split(",")]:
        idle = measure(iops, True, idle=True)
        on = measure(iops, True)
        off = measure(iops, False, hops=HOPS_OFF)
        rows.append((iops, on, off, idle))
    ok = True
    print(HEADER)
    for row in rows:
        iops, on, off, idle = row[0], row[1][0], row[2][0], row[3][0]
        print(table_row(row))
        near = on <= idle * 1.5 or on <= idle + 1
        ok &= near
        print("  on within 1.5x of idle: %s" % ("yes" if near else "NO"))
        if iops == 2:
            far = off >= 10 * on
            ok &= far
            print("  off at least 10x on: %s" % ("yes" if far else "NO"))
    if opts.write_docs:
        write_docs(rows)
    return 0 if ok else 1


HEADER = ("| IOPS | on | off | idle | off/on | on/idle "
          "| stop: on | off | idle | on/idle |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def table_row(row):
    """Downtimes in whole ms (query-migrate's), then the source's stop."""
    iops, (on, s_on), (off, s_off), (idle, s_idle) = row
    return ("| %d | %d | %d | %d | %.1fx | %.2fx | %.2f | %.2f | %.2f | %.2fx |"
            % (iops, on, off, idle, off / max(on, 1), on / max(idle, 1),
               s_on, s_off, s_idle, s_on / s_idle))


def write_docs(rows):
    md = os.path.join(TOP, "docs", "bench-downtime-qsd.md")
    png = os.path.join(TOP, "docs", "bench-downtime-qsd.png")
    dat = os.path.join(TOP, ".cache", "bench-downtime-qsd.dat")
    with open(md, "w") as f:
        f.write("# Downtime on qemu-storage-daemon, throttled\n\n"
                "Produced by `bench/downtime_qsd.py --write-docs` (one run; "
                "medians of %d migrations of one VM for on and idle, %d "
                "for off; TCG guest, 256 MiB, "
                "%d O_DIRECT writers on vhost-user-blk, the export's node "
                "behind a throttle group, max-bandwidth 10 GiB/s, "
                "downtime-limit %d ms, 2 cores). With inflight-migration on "
                "the source daemon withdraws the requests that wait in the "
                "group and waits only for those it has issued, which "
                "complete to the guest before it answers; off, the stop "
                "drains the group. Downtime in whole ms, from query-migrate; "
                "figures of a few ms vary by 1-3 ms from one run to the next, "
                "with the RAM the writers dirty, sent in the same stop. "
                "`stop` is the source's own stop for the switchover, from "
                "its trace (`vm_state_notify` to "
                "`migration_completion_vm_stop`, in ms): the device's "
                "GET_VRING_BASE round trips and the daemon's wait.\n\n"
                % (HOPS_FAST, HOPS_OFF, WRITERS, DOWNTIME_LIMIT_MS))
        f.write(HEADER + "\n")
        for row in rows:
            f.write(table_row(row) + "\n")
        f.write("\nTargets: `on` within 1.5x of idle (or 1 ms of it); "
                "`off` at least 10x `on` at 2 IOPS.\n"
                "\n![downtime](bench-downtime-qsd.png)\n")
    os.makedirs(os.path.dirname(dat), exist_ok=True)
    with open(dat, "w") as f:
        for iops, on, off, idle in rows:
            f.write('"%d IOPS" %d %d %d\n' % (iops, on[0], off[0], idle[0]))
    subprocess.run(["gnuplot", "-e",
                    "set terminal png size 700,400; set output '%s';"
                    "set style data histograms; set style fill solid 0.8;"
                    "set logscale y; set ylabel 'downtime (ms, log)';"
                    "set title 'qemu-storage-daemon, 16 writers, throttled';"
                    "plot '%s' using 2:xtic(1) title 'on', '' using 3 "
                    "title 'off', '' using 4 title 'idle disk'" % (png, dat)],
                   check=True)


if __name__ == "__main__":
    sys.exit(main())

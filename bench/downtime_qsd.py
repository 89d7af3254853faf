#!/usr/bin/env python3
"""Migration downtime of vhost-user-blk on qemu-storage-daemon throttled
to a few IOPS, with inflight-migration on and off and with the disk idle,
in one run.

A real guest (TCG) keeps 16 O_DIRECT writers busy on a vhost-user-blk
export whose node is behind a throttle group, so that nearly all of them
wait in the group when the migration starts.  With inflight-migration on,
the source daemon withdraws the requests the group has not let through and
waits only for those already issued; with it off, the stop drains, and
waits for the group to let every request through.  The baseline is the
same set-up migrated while the disk is idle.

Each figure is the median of three migrations in a row of one VM, from
query-migrate's downtime.  Prints a table and the ratios for the targets:
on within 1.5x of idle (or within 1 ms: query-migrate gives whole ms),
off at least 10x on at 2 IOPS.
Writes docs/bench-downtime-qsd.{md,png} with --write-docs.
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
WRITERS = 16
DOWNTIME_LIMIT_MS = 20          # as in bench/downtime_vhost_user_blk.py
BANDWIDTH = 10 << 30


def measure(iops, on, idle=False, hops=3):
    """Median downtime (ms) of `hops` migrations in a row of one VM."""
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
                                   run="writer", args=args))
        cur = guest(0, False)
        cur.wait_console(r"^idle" if idle else r"^ready", 120)
        downtimes = []
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
            cur.stop()
            cur = nxt
        return statistics.median(downtimes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iops", default="2,20")
    ap.add_argument("--write-docs", action="store_true")
    opts = ap.parse_args()
    rows = []
    for iops in [int(x) for x in opts.iops.split(",")]:
        idle = measure(iops, True, idle=True)
        on = measure(iops, True)
        off = measure(iops, False)
        rows.append((iops, on, off, idle))
    ok = True
    print("| IOPS | on | off | idle | off/on | on/idle |")
    for iops, on, off, idle in rows:
        print("| %d | %d | %d | %d | %.1fx | %.2fx |"
              % (iops, on, off, idle, off / max(on, 1), on / max(idle, 1)))
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


def write_docs(rows):
    md = os.path.join(TOP, "docs", "bench-downtime-qsd.md")
    png = os.path.join(TOP, "docs", "bench-downtime-qsd.png")
    dat = os.path.join(TOP, ".cache", "bench-downtime-qsd.dat")
    with open(md, "w") as f:
        f.write("# Downtime on qemu-storage-daemon, throttled\n\n"
                "Produced by `bench/downtime_qsd.py --write-docs` (one run; "
                "medians of 3 migrations of one VM; TCG guest, 256 MiB, "
                "%d O_DIRECT writers on vhost-user-blk, the export's node "
                "behind a throttle group, max-bandwidth 10 GiB/s, "
                "downtime-limit %d ms, 2 cores). With inflight-migration on "
                "the source daemon withdraws the requests that wait in the "
                "group and waits only for the one it has issued; off, the "
                "stop drains the group. Downtime in whole ms.\n\n"
                % (WRITERS, DOWNTIME_LIMIT_MS))
        f.write("| IOPS | on | off | idle | off/on | on/idle |\n"
                "|---|---|---|---|---|---|\n")
        for iops, on, off, idle in rows:
            f.write("| %d | %d | %d | %d | %.1fx | %.2fx |\n"
                    % (iops, on, off, idle, off / max(on, 1), on / max(idle, 1)))
        f.write("\nTargets: `on` within 1.5x of idle (or 1 ms of it); "
                "`off` at least 10x `on` at 2 IOPS.\n"
                "\n![downtime](bench-downtime-qsd.png)\n")
    os.makedirs(os.path.dirname(dat), exist_ok=True)
    with open(dat, "w") as f:
        for iops, on, off, idle in rows:
            f.write('"%d IOPS" %d %d %d\n' % (iops, on, off, idle))
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

#!/usr/bin/env python3
"""Migration downtime of vhost-user-blk with requests in flight, against
the back-end's latency and the number of requests in flight, with
inflight-migration on and off, in one run.

A real guest (TCG) keeps N O_DIRECT writers busy on vhost-user-blk served
by contrib/vhost-user-blk --latency L, so that about N requests are in
the back-end when the migration starts.  query-migrate's downtime is
taken from the source after completion.  The baseline is the same VM
migrated while its disk is idle.  With inflight-migration the back-end
stops at once and the requests move with the VM; without it, it completes
them first, so the stop waits for the storage.

Each figure is the median of three migrations in a row of the same VM
(per direction, for the rows between virtio-lm and upstream QEMU).
Prints a table and the ratios for the targets: 32 requests at 1000 ms,
on within 1.2x of idle and off at least 20x slower than on; several
queues (smp 2, num-queues=4) on within 1.2x of the same VM idle (or
within 1 ms: query-migrate gives whole ms).
Writes docs/bench-downtime-vhost-user-blk.{md,png} with --write-docs.
"""

import argparse
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))


MACHINE = "pc-i440fx-10.2"     # known to 10.2.2 and to upstream 11.0
BANDWIDTH = 10 << 30           # a local socket: RAM does not dominate
# Precopy switches over once what is left of RAM fits the downtime limit
# (default 300 ms): with the default, the RAM sent while the VM is stopped
# varies from run to run by up to that much, and hides the device's part.
# A small limit makes RAM's part small and even; the guest converges to it.
DOWNTIME_LIMIT_MS = 20


def measure(latency_ms, writers, on, idle=False, hops=3, bins=(vt.QEMU,),
            nq=1, smp=1):
    """Median downtime (ms) of migrations in a row of one VM, per direction
    (the VM moves between the binaries in `bins` in turn, `hops` times per
    direction), and the requests in flight the guest saw before each."""
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        args = (writers, 3600, 3600 if idle else 0)

        def guest(n, incoming):
            b = wd.add(vt.ContribBlk(wd.path, "b%d" % n, img,
                                     os.path.join(wd.path, "b%d.sock" % n),
                                     latency_ms))
            return wd.add(vt.Guest(wd.path, "g%d" % n, [vt.vhost_user_blk_device(b.vhost_sock, num_queues=nq,
                                                        inflight_migration=on)],
                                   incoming=incoming, run="writer", args=args,
                                   binary=bins[n % len(bins)], machine=MACHINE,
                                   smp=smp))
        cur = guest(0, False)
        cur.wait_console(r"^idle" if idle else r"^ready", 120)
        downtimes = [[] for _ in bins]
        inflight = []
        for hop in range(hops * len(bins)):
            nxt = guest(hop + 1, True)
            cur.cmd("migrate-set-parameters", **{
                "max-bandwidth": BANDWIDTH,
                "downtime-limit": DOWNTIME_LIMIT_MS})
            if idle:
                inflight.append(0)
            else:
                # Busy: most writers have a request in the back-end (a TCG
                # guest may not keep many writers busy on a fast back-end;
                # the table shows what it reached).
                start = len(cur.stats())
                try:
                    vt.wait_for(lambda: any(st[1] >= writers * 3 // 4
                                            for st in cur.stats()[start:]),
                                30, "writers busy")
                except vt.TestError:
                    pass
                inflight.append(cur.stats()[-1][1])
            info = vt.migrate(cur, nxt, "unix:" + os.path.join(wd.path, "mig%d" % hop))
            if info["status"] != "completed":
                raise vt.TestError("migration %s: %s" % (info["status"], info))
            downtimes[hop % len(bins)].append(info["downtime"])
            cur.stop()
            cur = nxt
        return [statistics.median(d) for d in downtimes], inflight


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--latencies", default="250,1000")
    ap.add_argument("--depths", default="8,32")
    ap.add_argument("--write-docs", action="store_true")
    opts = ap.parse_args()
    lats = [int(x) for x in opts.latencies.split(",")]
    depths = [int(x) for x in opts.depths.split(",")]

    (idle,), _ = measure(max(lats), max(depths), True, idle=True)
    rows = []
    print("%-24s %-10s %-12s %-12s %s" % ("case", "in flight", "on (ms)",
                                          "off (ms)", "off/on"))
    print("%-24s %-10s %-12s %-12s" % ("idle", 0, idle, idle))

    def row(name, on, off, n_on, n_off, base):
        n = "%d/%d" % (statistics.median(n_on), statistics.median(n_off))
        rows.append((name, n, on, off, base))
        print("%-24s %-10s %-12d %-12d %.1fx" % (name, n, on, off,
                                                off / max(on, 1)))
    for lat in lats:
        for depth in depths:
            (on,), n_on = measure(lat, depth, True)
            (off,), n_off = measure(lat, depth, False)
            row("%d ms, %d writers" % (lat, depth), on, off, n_on, n_off, idle)

    # Between virtio-lm and upstream QEMU (the 11.0 line), both directions
    cross = None
    if os.path.exists(vt.QEMU_UPSTREAM):
        bins = (vt.QEMU, vt.QEMU_UPSTREAM)
        (i_lu, i_ul), _ = measure(1000, 16, True, idle=True, bins=bins)
        (on_lu, on_ul), n_on = measure(1000, 16, True, bins=bins)
        (off_lu, off_ul), n_off = measure(1000, 16, False, bins=bins)
        row("lm->up, 1000 ms, 16", on_lu, off_lu, n_on, n_off, i_lu)
        row("up->lm, 1000 ms, 16", on_ul, off_ul, n_on, n_off, i_ul)
        cross = (on_lu / max(i_lu, 1), on_ul / max(i_ul, 1))

    # Several queues: smp 2, num-queues=4, 6 writers
    (mq_idle,), _ = measure(1000, 6, True, idle=True, nq=4, smp=2)
    (mq_on,), n_on = measure(1000, 6, True, nq=4, smp=2)
    (mq_off,), n_off = measure(1000, 6, False, nq=4, smp=2)
    row("4 queues, 1000 ms, 6", mq_on, mq_off, n_on, n_off, mq_idle)

    # query-migrate's downtime is in whole ms: at a few ms, a ratio moves
    # in steps of 1/idle, so the 1.2x targets also count as met within one
    # ms of idle.
    def near_idle(on, base):
        return on <= 1.2 * base or on - base <= 1

    key = [r for r in rows if r[0] == "1000 ms, 32 writers"]
    ok = True
    if key:
        _, _, on, off, _ = key[0]
        r_idle, r_off = on / max(idle, 1), off / max(on, 1)
        print("32 requests, 1000 ms: on/idle = %.2fx, on - idle = %d ms "
              "(target <= 1.2x or <= 1 ms), off/on = %.1fx (target >= 20x)"
              % (r_idle, on - idle, r_off))
        ok = near_idle(on, idle) and r_off >= 20
    print("4 queues: on/idle = %.2fx, on - idle = %d ms (idle %d ms; target "
          "<= 1.2x or <= 1 ms)" % (mq_on / max(mq_idle, 1), mq_on - mq_idle,
                                   mq_idle))
    ok = ok and near_idle(mq_on, mq_idle)
    if cross:
        print("lm->up on/idle = %.2fx, up->lm on/idle = %.2fx" % cross)
    if opts.write_docs:
        write_docs(idle, rows)
    return 0 if ok else 1


def write_docs(idle, rows):
    md = os.path.join(TOP, "docs", "bench-downtime-vhost-user-blk.md")
    dat = os.path.join(TOP, ".cache", "bench-downtime.dat")
    png = os.path.join(TOP, "docs", "bench-downtime-vhost-user-blk.png")
    with open(md, "w") as f:
        f.write("# vhost-user-blk downtime with requests in flight\n\n"
                "Produced by `bench/downtime_vhost_user_blk.py --write-docs` "
                "(one run; medians of 3 migrations per direction; TCG guest, "
                "256 MiB, machine %s, max-bandwidth 10 GiB/s, "
                "downtime-limit %d ms, 2 cores, contrib/vhost-user-blk "
                "--latency on both sides). Downtime is query-migrate's, in "
                "whole ms, so ratios of figures this small move in steps. "
                "Idle disk: %d ms; each row's idle figure is the same VM "
                "set-up with its disk idle. With the default downtime-limit "
                "(300 ms) the RAM left at switchover varies by up to that "
                "much from one migration to the next and hides the device's "
                "part.\n\n"
                % (MACHINE, DOWNTIME_LIMIT_MS, idle))
        f.write("| case | in flight (on/off) | on | off | idle | off/on | on/idle |\n"
                "|---|---|---|---|---|---|---|\n")
        for name, n, on, off, base in rows:
            f.write("| %s | %s | %d | %d | %d | %.1fx | %.2fx |\n"
                    % (name, n, on, off, base, off / max(on, 1),
                       on / max(base, 1)))
        f.write("\nTargets: with 32 requests in flight on 1000 ms storage, "
                "and with four queues, `on` within 1.2x of idle or, since "
                "the figure is in whole ms, within 1 ms of it; `off` at "
                "least 20x `on`.\n")
        f.write("\n![downtime](bench-downtime-vhost-user-blk.png)\n")
    with open(dat, "w") as f:
        for i, (name, n, on, off, base) in enumerate(rows):
            f.write('%d "%s" %d %d %d\n' % (i, name, on, off, base))
    subprocess.run(["gnuplot", "-e",
                    "set terminal png size 900,450; set output '%s';"
                    "set style data histograms; set style fill solid 0.8;"
                    "set xtics rotate by -20; set ylabel 'downtime (ms)';"
                    "set title 'vhost-user-blk migration downtime';"
                    "plot '%s' using 3:xtic(2) title 'inflight-migration=on',"
                    " '' using 4 title 'off', '' using 5 title 'idle disk'"
                    % (png, dat)], check=True)


if __name__ == "__main__":
    sys.exit(main())

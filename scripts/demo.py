#!/usr/bin/env python3
"""virtio-lm demonstration: live-migrate a guest whose vhost-user-blk disk
has requests in flight.

Two qemu-system-x86_64 processes (source and destination) on this machine,
each with a vhost-user-blk-pci device served by its own qemu-storage-daemon
on the same image (a throttle group makes every request take a while, so
requests are really in flight in the back-end).  The guest (Debian's cloud
kernel and a busybox initramfs) keeps O_DIRECT writers busy; the source is
migrated over QMP while they are, and the report says what became of the
requests that were in flight at switchover.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402


def run(args):
    wd = vt.Workdir()
    with wd:
        d = wd.path
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        extra = ""
        src_qsd = wd.add(vt.StorageDaemon(d, "qsd-src", img, os.path.join(d, "src.sock"),
                                          iops=args.iops))
        dst_qsd = wd.add(vt.StorageDaemon(d, "qsd-dst", img, os.path.join(d, "dst.sock"),
                                          iops=args.iops))
        t0 = time.monotonic()
        src = wd.add(vt.Guest(d, "src", [vt.vhost_user_blk_device(src_qsd.vhost_sock,
                                                                  extra=extra)],
                              run="writer", args=(args.writers, args.seconds)))
        src.wait_console(r"^ready", 180)
        print("guest booted in %.1fs (TCG); %d writers on vhost-user-blk, "
              "back-end limited to %d IOPS" % (time.monotonic() - t0, args.writers,
                                               args.iops))
        # Wait until the back-end really holds requests.
        vt.wait_for(lambda: any(s[1] >= min(args.writers, 4) for s in src.stats()[-1:]),
                    60, "requests in flight")
        dst = wd.add(vt.Guest(d, "dst", [vt.vhost_user_blk_device(dst_qsd.vhost_sock,
                                                                  extra=extra)],
                              incoming=True, run="writer",
                              args=(args.writers, args.seconds)))
        info = vt.migrate(src, dst, "unix:%s" % os.path.join(d, "mig.sock"))
        status = info["status"]
        print("migration: %s, total %s ms, downtime %s ms" %
              (status, info.get("total-time"), info.get("downtime")))
        if status != "completed":
            print("migration error: %s" % info.get("error-desc"))
            return 1
        # The source's last sample is the guest's state at switchover.
        at_switch = src.stats()[-1]
        # Follow the destination until the workload verifies its data, or
        # until it makes no progress for stall_s seconds with I/O pending.
        stall_s = 10
        verdict = None
        last_change = time.monotonic()
        prev = None
        deadline = time.monotonic() + args.seconds + 60
        while time.monotonic() < deadline and dst.alive():
            v = [ln for ln in dst.vlm_lines() if ln.startswith("verify")]
            if v:
                verdict = v[0]
                break
            st = dst.stats()
            cur = st[-1][2] if st else at_switch[2]
            if cur != prev:
                prev, last_change = cur, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                break
            time.sleep(0.5)
        dst_stats = dst.stats()
        last = dst_stats[-1] if dst_stats else at_switch
        print()
        print("report (guest block-layer counters, /sys/block/vda)")
        print("  at switchover, in flight       : %d requests" % at_switch[1])
        print("  at switchover, completed       : %d writes" % at_switch[2])
        print("  completed on the destination   : %d writes" % (last[2] - at_switch[2]))
        print("  still in flight at the end     : %d requests" % last[1])
        if verdict:
            print("  guest data verification        : %s" % verdict)
        else:
            print("  guest data verification        : never reached: no write completed "
                  "for %ds, the guest's I/O hangs" % stall_s)
        log = [ln for ln in src_qsd.log().splitlines() if ln.strip()]
        if log:
            print("  source back-end says           : %s" % log[-1])
        ok = verdict is not None and verdict.startswith("verify ok")
        print()
        print("RESULT: %s" % ("no request lost" if ok else
                              "requests in flight at switchover were lost"))
        return 0 if ok or not args.expect_no_loss else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--iops", type=int, default=20)
    ap.add_argument("--expect-no-loss", action="store_true",
                    help="exit 1 when requests in flight at switchover are lost "
                    "(by default the demo reports what happened and exits 0)")
    return run(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())

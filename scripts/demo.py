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
        before = src.stats()[-1]
        src_ops_before = src_qsd.write_ops()
        info = vt.migrate(src, dst, "unix:%s" % os.path.join(d, "mig.sock"))
        src_ops_at_switch = src_qsd.write_ops()
        status = info["status"]
        print("migration: %s, total %s ms, downtime %s ms" %
              (status, info.get("total-time"), info.get("downtime")))
        if status != "completed":
            print("migration error: %s" % info.get("error-desc"))
            return 1
        # Give the destination time to finish the workload.
        t_end = time.monotonic() + args.seconds + 30
        verdict = None
        while time.monotonic() < t_end:
            lines = dst.vlm_lines()
            v = [ln for ln in lines if ln.startswith("verify")]
            if v:
                verdict = v[0]
                break
            if not dst.alive():
                break
            time.sleep(0.5)
        time.sleep(1)
        src_ops_late = src_qsd.write_ops() - src_ops_at_switch
        dst_stats = dst.stats()
        last = dst_stats[-1] if dst_stats else before
        print()
        print("report")
        print("  in flight in the guest before migration : %d requests" % before[1])
        print("  writes completed before migration       : %d" % before[2])
        print("  source back-end writes after switchover : %d (completions with "
              "nowhere to go)" % src_ops_late)
        print("  on the destination, last sample          : inflight=%d writes=%d"
              % (last[1], last[2]))
        print("  destination back-end writes              : %d" % dst_qsd.write_ops())
        if verdict:
            print("  guest verification                       : %s" % verdict)
        else:
            print("  guest verification                       : never reached - "
                  "%d requests still in flight, the guest's I/O hangs" % last[1])
        log = src_qsd.log().strip()
        if log:
            print("  source back-end log: %s" % log.splitlines()[-1])
        ok = verdict is not None and verdict.startswith("verify ok")
        print()
        print("RESULT: %s" % ("no request lost" if ok else
                              "requests in flight at switchover were lost"))
        return 0 if ok or args.allow_loss else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--iops", type=int, default=20)
    ap.add_argument("--allow-loss", action="store_true",
                    help="exit 0 even when requests are lost (today's behaviour)")
    return run(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())

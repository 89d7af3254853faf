#!/usr/bin/env python3
"""virtio-lm demonstration: live-migrate guests whose disks have requests in
flight.

Part 1, vhost-user-blk with inflight-migration=on: two qemu-system-x86_64
processes (source and destination) on this machine, each with a
vhost-user-blk-pci device served by its own contrib/vhost-user-blk on the
same image, with --latency so that every request stays in the back-end for
a while, as on slow storage.  The guest (Debian's cloud kernel and a
busybox initramfs) keeps O_DIRECT writers busy; the source is migrated over
QMP while they are, and the report says what became of the requests that
were in flight at switchover and what the downtime was.  Then the same with
inflight-migration=off: the back-end completes its requests before it
stops, and the downtime grows by the storage latency.

Part 3, the same on qemu-storage-daemon's vhost-user-blk export, slowed by
a throttle group, with inflight-migration=on.  Unpatched 10.2.2 lost the
requests in flight at switchover there (the source daemon logged
"vu_panic: Error writing eventfd" and the guest hung on the destination).

Part 4, vhost-user-blk with inflight-migration=on and backend-state=on:
as part 1, and the source back-end also holds internal state (--state-size,
a pseudo-random blob standing for a cache or sessions), which QEMU takes
from it over VHOST_USER_PROTOCOL_F_DEVICE_STATE at switchover and hands to
the destination's; the report compares the two back-ends' SHA-256.

Part 2, virtio-blk with inflight-vmstate=on: the guest's writes fail
(werror=stop), the VM stops with the requests held in the device; it is
migrated, the requests travel in the "virtio/inflight" subsection, and the
destination completes them when the VM continues.

Part 5, virtio SUSPEND (virtio 1.4): no Linux driver uses it yet, so a
libqos driver (tests/qtest/virtio-suspend-test) plays the guest.  It
suspends a vhost-user-blk device while 8 requests sit on 1000 ms storage,
once finishing them first (the spec's default) and once with
x-suspend-stop=on (they stay in flight), migrates the suspended device, and
resumes it on the destination, where every request completes exactly once.
"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402


def run_held(args):
    """Part 2: held virtio-blk requests through virtio/inflight."""
    props = ",inflight-vmstate=on"
    with vt.Workdir() as wd:
        d = wd.path
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(d, "src", [vt.virtio_blk(img, props, True)], run="writer",
                              args=(args.writers, 3, 1)))
        dst = wd.add(vt.Guest(d, "dst", [vt.virtio_blk(img, props, False)], incoming=True,
                              run="writer", args=(args.writers, 3, 1)))
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    120, "the source to stop on the I/O error")
        info = vt.migrate(src, dst, "unix:" + os.path.join(d, "mig"),
                          caps=("return-path",))
        print("migration: %s, total %s ms, downtime %s ms" %
              (info["status"], info.get("total-time"), info.get("downtime")))
        if info["status"] != "completed":
            return 1
        dst.cmd("cont")
        m = dst.wait_console(r"^verify (\w+) (\d+) (\d+)", 120)
        st = dst.stats()
        print()
        print("report (guest block-layer counters, /sys/block/vda)")
        print("  source                         : stopped on EIO (werror=stop) "
              "with the failed writes held")
        print("  completed on the destination   : %d writes" % (st[-1][2] if st else 0))
        print("  guest data verification        : %s" % m.group(0))
        ok = m.group(1) == "ok"
        print()
        print("RESULT: %s" % ("held requests completed on the destination" if ok
                              else "data verification failed"))
        return 0 if ok else 1


def backend(wd, kind, img, name, args, state=None):
    sock = os.path.join(wd.path, name + ".sock")
    if kind == "qsd":
        return wd.add(vt.StorageDaemon(wd.path, name, img, sock, iops=args.iops))
    extra = []
    if state is not None:
        extra = ["--state-size", str(state[0]), "--state-seed", str(state[1])]
    return wd.add(vt.ContribBlk(wd.path, name, img, sock, args.latency, extra=extra))


def state_lines(b, what):
    return [ln for ln in b.log().splitlines() if "state %s:" % what in ln]


def run(args, kind="contrib", inflight_migration=True, state_mib=0):
    wd = vt.Workdir()
    with wd:
        d = wd.path
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        extra = ",inflight-migration=on" if inflight_migration else ""
        if state_mib:
            extra += ",backend-state=on"
        src_b = backend(wd, kind, img, "src-backend", args,
                        (state_mib << 20, 1) if state_mib else None)
        dst_b = backend(wd, kind, img, "dst-backend", args,
                        (0, 2) if state_mib else None)
        t0 = time.monotonic()
        src = wd.add(vt.Guest(d, "src", [vt.vhost_user_blk_device(src_b.vhost_sock,
                                                                  extra=extra)],
                              run="writer", args=(args.writers, args.seconds)))
        src.wait_console(r"^ready", 180)
        print("guest booted in %.1fs (TCG); %d writers on vhost-user-blk%s, "
              % (time.monotonic() - t0, args.writers, extra) +
              ("qemu-storage-daemon limited to %d IOPS" % args.iops if kind == "qsd"
               else "contrib/vhost-user-blk --latency %d" % args.latency))
        # Wait until the back-end really holds requests.
        vt.wait_for(lambda: any(s[1] >= min(args.writers, 4) for s in src.stats()[-1:]),
                    60, "requests in flight")
        dst = wd.add(vt.Guest(d, "dst", [vt.vhost_user_blk_device(dst_b.vhost_sock,
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
        # until its console shows nothing new for stall_s seconds (the
        # verification reads one block per writer, one after the other).
        stall_s = 30
        verdict = None
        last_change = time.monotonic()
        prev = None
        deadline = time.monotonic() + args.seconds + 120
        while time.monotonic() < deadline and dst.alive():
            lines = dst.vlm_lines()
            v = [ln for ln in lines if ln.startswith("verify")]
            if v:
                verdict = v[0]
                break
            if len(lines) != prev:
                prev, last_change = len(lines), time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                break
            time.sleep(0.5)
        if verdict is None:
            # The guest powers off after its verification
            v = [ln for ln in dst.vlm_lines() if ln.startswith("verify")]
            verdict = v[0] if v else None
        dst_stats = dst.stats()
        last = dst_stats[-1] if dst_stats else at_switch
        print()
        print("report (guest block-layer counters, /sys/block/vda)")
        print("  at switchover, in flight       : %d requests" % at_switch[1])
        print("  at switchover, completed       : %d writes" % at_switch[2])
        print("  completed on the destination   : %d writes" % (last[2] - at_switch[2]))
        if verdict:
            print("  guest data verification        : %s" % verdict)
        else:
            print("  guest data verification        : never reached: no progress "
                  "for %ds, the guest's I/O hangs" % stall_s)
        log = [ln for ln in src_b.log().splitlines()
               if ln.strip() and "state" not in ln]
        if log:
            print("  source back-end says           : %s" % log[-1])
        ok = verdict is not None and verdict.startswith("verify ok")
        if state_mib:
            saved = state_lines(src_b, "saved")
            loaded = vt.wait_for(lambda: state_lines(dst_b, "loaded"), 60,
                                 "the destination back-end's state")
            same = bool(saved) and saved[-1].split("state saved:")[1] == \
                loaded[-1].split("state loaded:")[1]
            print("  back-end state, source         : %s" % saved[-1].split(": ", 1)[1])
            print("  back-end state, destination    : %s" % loaded[-1].split(": ", 1)[1])
            print("  back-end state                 : %s" %
                  ("arrived byte-exact" if same else "DIFFERS"))
            ok = ok and same
        print()
        print("RESULT: %s" % ("no request lost" if ok else
                              "requests in flight at switchover were lost"))
        return 0 if ok else 1


def run_suspend():
    """Part 5: the libqos suspend/migrate/resume cases and the timing."""
    build = vt.BUILD
    env = dict(os.environ, QTEST_QEMU_BINARY=vt.QEMU,
               QTEST_VHOST_USER_BLK_BINARY=os.path.join(
                   build, "contrib/vhost-user-blk/vhost-user-blk"))
    test = os.path.join(build, "tests/qtest/virtio-suspend-test")
    cases = ["/x86_64/virtio/suspend/vhost-user-blk-inflight/migrate",
             "/x86_64/virtio/suspend/vhost-user-blk-stop/migrate",
             "/x86_64/virtio/suspend/migrate", "/x86_64/virtio/suspend/perf"]
    argv = [test, "--tap", "-m", "perf"]
    for c in cases:
        argv += ["-p", c]
    out = subprocess.run(argv, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=600,
                         check=False).stdout
    names = {
        "vhost-user-blk-inflight/migrate": "suspend finishes the 8 requests, "
        "migrate suspended, resume on the destination",
        "vhost-user-blk-stop/migrate": "x-suspend-stop: suspend with them in "
        "flight, migrate, resume: each completes once",
        "migrate": "virtio-blk: config change and a kick while suspended, "
        "migrate, resume: processed and notified",
        "perf": "timing",
    }
    ok = True
    for ln in out.splitlines():
        m = re.match(r"(not ok|ok) \d+ /x86_64/virtio/suspend/(\S+)", ln)
        if m:
            ok &= m.group(1) == "ok"
            print("  %-6s %s" % (m.group(1), names.get(m.group(2), m.group(2))))
        m = re.search(r"suspend with .*", ln)
        if m:
            print("  %s" % m.group(0))
    if not re.search(r"^1\.\.4$", out, re.M):
        ok = False
        print(out[-3000:])
    print()
    print("RESULT: %s" % ("suspended devices migrate and resume with nothing "
                          "lost" if ok else "a suspend case failed"))
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("1", "2", "3", "4", "5", "all"),
                    default="all")
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--latency", type=int, default=1000,
                    help="contrib/vhost-user-blk latency per request, ms")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--iops", type=int, default=20)
    ap.add_argument("--state-mib", type=int, default=64,
                    help="part 4: the source back-end's state, MiB")
    args = ap.parse_args()
    rc = 0
    if args.part in ("1", "all"):
        print("== part 1: vhost-user-blk, requests in flight in the back-end, "
              "inflight-migration=on")
        rc |= run(args)
        print()
        print("== part 1, for comparison: the same with inflight-migration=off")
        rc |= run(args, inflight_migration=False)
    if args.part in ("2", "all"):
        print()
        print("== part 2: virtio-blk, requests held by werror=stop, "
              "inflight-vmstate=on")
        rc |= run_held(args)
    if args.part in ("3", "all"):
        print()
        print("== part 3: qemu-storage-daemon's export, throttled, "
              "inflight-migration=on")
        rc |= run(args, kind="qsd")
    if args.part in ("4", "all"):
        print()
        print("== part 4: vhost-user-blk, requests in flight and %d MiB of "
              "back-end state, inflight-migration=on, backend-state=on"
              % args.state_mib)
        rc |= run(args, state_mib=args.state_mib)
    if args.part in ("5", "all"):
        print()
        print("== part 5: virtio SUSPEND, vhost-user-blk on 1000 ms storage, "
              "suspended, migrated and resumed by a libqos driver")
        rc |= run_suspend()
    return rc


if __name__ == "__main__":
    sys.exit(main())

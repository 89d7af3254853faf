#!/usr/bin/env python3
"""Back-end state transfer: throughput and switchover time for 1 MiB to
256 MiB of vhost-user back-end state, against the raw pipe throughput
measured in the same run, and QEMU's extra memory.

For each size, a VM that runs its firmware only, with vhost-user-blk
backend-state=on on contrib/vhost-user-blk --state-size N, migrates over a
UNIX socket to a destination whose back-end loads the state.  The
switchover time runs from the source's STOP event to the destination's
RESUME event; minus the switchover time with an empty state, it is the
time the state took: back-end -> pipe -> QEMU -> socket -> QEMU -> pipe
-> back-end, then CHECK_DEVICE_STATE.  Both the QEMU-supplied pipe and the
back-end's own (--state-own-pipe) are measured.  The
raw pipe is 1 GiB through one 1 MiB pipe between two processes, in 1 MiB
blocks, from buffers allocated once.  Memory is the growth of VmHWM of
each QEMU during the migration, beyond the growth with an empty state.

Each configuration runs --runs times (5) and the median is taken: the
machine's noise has long tails.  The ratios come from this one run.  Exits non-zero if the targets are missed at 256 MiB: at
least half the raw pipe throughput, and no more than one extra copy of
the state in either QEMU.
"""

import argparse
import fcntl
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402

MiB = 1024 * 1024
F_SETPIPE_SZ = 1031


def vm(wd, name, sock, incoming=False):
    """A VM running its firmware only, with vhost-user-blk backend-state=on"""
    dev = ["-chardev", "socket,id=vub0,path=%s" % sock,
           "-device", "vhost-user-blk-pci,id=blk0,chardev=vub0,"
           "backend-state=on,x-state-transfer-timeout=120000"]
    return wd.add(vt.Guest(wd.path, name, [dev], mem="128M", incoming=incoming,
                           kernel=False, binary=vt.QEMU))


def event_time(p, name, timeout=120):
    def find():
        for e in p.events():
            if e["event"] == name:
                return e["timestamp"]["seconds"] + e["timestamp"]["microseconds"] / 1e6
        return None
    return vt.wait_for(find, timeout, "%s on %s" % (name, p.name))


def hwm_kib(p):
    with open("/proc/%d/status" % p.pid) as f:
        for ln in f:
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1])
    raise RuntimeError("no VmHWM")


def one(size, own_pipe):
    with vt.Workdir(prefix="vlm-bench-") as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img, "16M")
        extra = ["--state-own-pipe"] if own_pipe else []
        bes = []
        for name, n, seed in (("src-be", size, 1), ("dst-be", 0, 2)):
            bes.append(wd.add(vt.ContribBlk(
                wd.path, name, img, os.path.join(wd.path, name + ".sock"),
                extra=["--state-size", str(n), "--state-seed", str(seed)] + extra)))
        src = vm(wd, "src", bes[0].vhost_sock)
        dst = vm(wd, "dst", bes[1].vhost_sock, incoming=True)
        src.cmd("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
        h0 = (hwm_kib(src), hwm_kib(dst))
        uri = "unix:" + os.path.join(wd.path, "mig.sock")
        dst.cmd("migrate-incoming", uri=uri)
        src.cmd("migrate", uri=uri)
        stop = event_time(src, "STOP")
        resume = event_time(dst, "RESUME")
        info = src.cmd("query-migrate")
        assert info["status"] == "completed", info
        h1 = (hwm_kib(src), hwm_kib(dst))
        loaded = vt.wait_for(lambda: [ln for ln in bes[1].log().splitlines()
                                      if "state loaded" in ln], 60, "the load")
        assert ("%d bytes" % size) in loaded[-1], bes[1].log()
        return ((resume - stop) * 1000, info["downtime"],
                (h1[0] - h0[0]) * 1024, (h1[1] - h0[1]) * 1024)


def one_side(size):
    """(save ms, load ms): the source saves to /dev/null (QEMU's downtime:
    back-end -> pipe -> QEMU -> stream), then a destination loads a saved
    stream from tmpfs (migrate-incoming to RESUME: stream -> QEMU -> pipe ->
    back-end, then CHECK_DEVICE_STATE)."""
    with vt.Workdir(prefix="vlm-bench-") as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img, "16M")
        be = [wd.add(vt.ContribBlk(wd.path, name, img,
                                   os.path.join(wd.path, name + ".sock"),
                                   extra=["--state-size", str(n), "--state-seed", "1"]))
              for name, n in (("src-be", size), ("file-be", size), ("dst-be", 0))]
        src = vm(wd, "src", be[0].vhost_sock)
        src.cmd("migrate-set-parameters", **{"max-bandwidth": 64 << 30})
        null = os.open("/dev/null", os.O_WRONLY)
        src.send_fd_scm(null)
        os.close(null)
        src.cmd("getfd", fdname="null")
        src.cmd("migrate", uri="fd:null")
        save = vt.wait_for(lambda: (lambda i: i if i["status"] == "completed" else None)(
            src.cmd("query-migrate")), 600, "save")["downtime"]
        # The stream to load: saved to tmpfs by a second source
        path = "/dev/shm/%s.mig" % os.path.basename(wd.path)
        try:
            src2 = vm(wd, "src2", be[1].vhost_sock)
            src2.cmd("migrate", uri="file:" + path)
            vt.wait_for(lambda: src2.cmd("query-migrate")["status"] == "completed",
                        600, "save to tmpfs")
            dst = vm(wd, "dst", be[2].vhost_sock, incoming=True)
            t = time.time()
            dst.cmd("migrate-incoming", uri="file:" + path)
            load = (event_time(dst, "RESUME") - t) * 1000
        finally:
            os.unlink(path)
        return save, load


def raw_pipe(size, pipe_size):
    """Bytes/s through one pipe of pipe_size bytes, 1 MiB writes and reads
    from buffers allocated once, writer and reader in two processes."""
    r, w = os.pipe()
    fcntl.fcntl(r, F_SETPIPE_SZ, pipe_size)
    pid = os.fork()
    if pid == 0:
        os.close(r)
        buf = memoryview(bytes(MiB))
        left = size
        while left:
            left -= os.write(w, buf[:min(left, MiB)])
        os._exit(0)
    os.close(w)
    buf = bytearray(MiB)
    got = 0
    t = time.monotonic()
    while True:
        n = os.readv(r, [buf])
        if n == 0:
            break
        got += n
    dt = time.monotonic() - t
    os.close(r)
    os.waitpid(pid, 0)
    assert got == size
    return size / dt


def median_of(runs, f):
    res = [f() for _ in range(runs)]
    return tuple(statistics.median(r[i] for r in res) for i in range(len(res[0])))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,16,64,256", help="MiB, comma-separated")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sizes = [int(x) * MiB for x in args.sizes.split(",")]

    # The raw pipe, 1 GiB through a pipe of the size the transfer used
    raw = {own: statistics.median(raw_pipe(1024 * MiB, MiB) for _ in range(3))
           for own in (False, True)}
    rows = []
    ok = True
    base_side = median_of(args.runs, lambda: one_side(0))
    for own in (False, True):
        base = median_of(args.runs, lambda: one(0, own))
        for size in sizes:
            sw, dt, msrc, mdst = median_of(args.runs, lambda: one(size, own))
            thr = size / (max(sw - base[0], 1) / 1000.0)
            extra_src = max(msrc - base[2], 0) / size
            extra_dst = max(mdst - base[3], 0) / size
            sides = (0, 0)
            if not own:
                sv, ld = median_of(args.runs, lambda: one_side(size))
                sides = (size / (max(sv - base_side[0], 1) / 1000.0),
                         size / (max(ld - base_side[1], 1) / 1000.0))
            rows.append((own, size, sw, dt, thr, raw[own], thr / raw[own],
                         extra_src, extra_dst, sides))
            if size == 256 * MiB and (thr / raw[own] < 0.5 or
                                      max(extra_src, extra_dst) > 1.0):
                ok = False

    print("switchover with an empty state: %.0f ms (QEMU's pipe), %.0f ms "
          "(back-end's pipe)" % (median_of(1, lambda: one(0, False))[0],
                                 median_of(1, lambda: one(0, True))[0]))
    print("| pipe | state | switchover ms | source downtime ms | transfer MiB/s "
          "| raw pipe MiB/s | ratio | src QEMU extra mem / state "
          "| dst QEMU extra mem / state |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for own, size, sw, dt, thr, rawp, ratio, es, ed, _ in rows:
        print("| %s | %d MiB | %.0f | %d | %.0f | %.0f | %.2f | %.3f | %.3f |"
              % ("back-end's" if own else "QEMU's", size // MiB, sw, dt,
                 thr / MiB, rawp / MiB, ratio, es, ed))
    print()
    print("One side at a time (QEMU's pipe): save to /dev/null, load from tmpfs")
    print()
    print("| state | save MiB/s | save / raw pipe | load MiB/s | load / raw pipe |")
    print("|---:|---:|---:|---:|---:|")
    for own, size, *_, sides in rows:
        if not own:
            print("| %d MiB | %.0f | %.2f | %.0f | %.2f |"
                  % (size // MiB, sides[0] / MiB, sides[0] / raw[own],
                     sides[1] / MiB, sides[1] / raw[own]))
    print("targets at 256 MiB: ratio >= 0.5, extra memory <= 1 copy: %s"
          % ("met" if ok else "MISSED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Soak: live guests migrate back and forth, under injected faults, while
their writers verify every block (tests/guest/soak.sh).

Each configuration is a guest, its disk, and how the destinations are made:

  contrib-blk      vhost-user-blk on contrib/vhost-user-blk --latency 300,
                   inflight-migration=on, a new back-end for each QEMU
  contrib-blk-state  the same with backend-state=on: the first back-end's
                   synthetic state of 1 MiB moves from back-end to back-end
                   (each migration: the destination's loaded the source's)
  qsd-inflight-on  vhost-user-blk on two long-lived qemu-storage-daemons,
  qsd-inflight-off throttled, one per side, inflight-migration on or off
  virtio-blk       virtio-blk with inflight-vmstate=on

Each round migrates the guest to a new destination, with a fault drawn from
the configuration's (seeded: the seed is printed):

  none                 the migration completes
  dst-kill-precopy     the destination QEMU is killed (SIGKILL) in precopy
  dst-kill-switchover  ... at the switchover (pause-before-switchover), and
                       the migration is cancelled
  cancel               migrate_cancel at a random moment
  dst-backend-kill     the destination's back-end is killed in precopy, and
                       a new one started on its socket
  src-backend-restart  the source's back-end is killed while the guest
                       writes, a new one started on its socket (QEMU
                       reconnects and hands it the inflight region), and
                       then the guest migrates
  socket-cut           the migration socket is shut down mid-stream
  refuse               the destination is the unpatched 10.2.2 build

After every round: the guest's verifier has found nothing; after a failure,
the source runs, its fd count is back to where it was, and its writes go on
(the next round is the retry); no back-end panicked.  Every 10 rounds, and
at the end, the fd count and RSS of the long-lived processes (the storage
daemons) are sampled: the fd count must not grow.

  soak.py [--rounds N] [--seed S] [--configs A,B] [--faults F,G]
          [--write-docs]

--rounds 0 runs each fault of each configuration once, in a seeded order
(the test command's smoke run).  --write-docs puts the tables into
docs/soak.md.  A failed run keeps its logs and consoles in
.cache/soak-failures/SEED-CONFIG-roundN/.
"""

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vlmtest as vt  # noqa: E402

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
WRITERS = 4
CONTRIB_LATENCY_MS = 300
QSD_IOPS = 40
STATE_SIZE = 1 << 20
# Precopy of the guest's 256 MiB (about 90 MiB not zero) takes about 3 s
BANDWIDTH = 32 << 20
FAULT_WINDOW = 3.0
RECONNECT_WAIT = 2.5
FAULTS = ("none", "dst-kill-precopy", "dst-kill-switchover", "cancel",
          "dst-backend-kill", "src-backend-restart", "socket-cut", "refuse")
BACKEND_FAULTS = ("dst-backend-kill", "src-backend-restart")


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Node:
    """A QEMU, the back-end it alone uses if any, and the side (0 or 1) of
    the back-ends that outlive the QEMUs that it uses."""

    def __init__(self, guest, backend=None, side=0):
        self.guest = guest
        self.backend = backend
        self.side = side

    def stop(self):
        self.guest.stop()
        if self.backend:
            self.backend.stop()


class Config:
    name = None
    faults = FAULTS

    def __init__(self, wd):
        self.wd = wd
        self.img = os.path.join(wd.path, "disk.img")
        vt.create_image(self.img, "64M")
        self.n = 0
        self.restarts = 0

    def path(self, name):
        return os.path.join(self.wd.path, name)

    def node(self, src=None, refuse=False):
        """The source QEMU, or a destination for src's guest (the unpatched
        build if refuse), with the guest's disk."""
        self.n += 1
        side = 0 if src is None else 1 - src.side
        backend, devices = self.disk(refuse, side)
        if refuse and not os.path.exists(vt.QEMU_BASE):
            raise vt.TestError("no unpatched build: scripts/build.sh --base")
        guest = self.wd.add(vt.Guest(
            self.wd.path, "q%d" % self.n, [devices], incoming=src is not None,
            run="soak", args=(WRITERS,),
            binary=vt.QEMU_BASE if refuse else vt.QEMU))
        return Node(guest, backend, side)

    def backend_of(self, node):
        return node.backend

    def check_completed(self, src, dst):
        """What a completed migration must have moved besides the guest."""

    def long_lived(self):
        return []

    def backends(self):
        return []

    def restart_backend(self, node, completed):
        """A new back-end on the socket of node's, which was killed, if
        anything still needs it (completed: the guest runs on node)."""
        raise NotImplementedError


class ContribBlk(Config):
    name = "contrib-blk"

    def disk(self, refuse, side):
        return self.contrib(refuse)

    def contrib(self, refuse, extra=(), props=""):
        sock = self.path("vub%d.sock" % self.n)
        b = self.wd.add(vt.ContribBlk(self.wd.path, "vub%d" % self.n, self.img,
                                      sock, CONTRIB_LATENCY_MS, extra))
        self.all_backends.append(b)
        return b, vt.vhost_user_blk_device(sock, inflight_migration=None if refuse
                                           else True, extra=props)

    def __init__(self, wd):
        self.all_backends = []
        super().__init__(wd)

    def backends(self):
        return self.all_backends

    def restart_backend(self, node, completed):
        if not completed:
            return
        os.unlink(node.backend.vhost_sock)
        self.restarts += 1
        node.backend = self.wd.add(vt.ContribBlk(
            self.wd.path, "vub-restart%d" % self.restarts, self.img,
            node.backend.vhost_sock, CONTRIB_LATENCY_MS, self.restart_extra))
        self.all_backends.append(node.backend)

    # A restarted back-end starts as a destination's: its state is gone
    restart_extra = ()


class ContribBlkState(ContribBlk):
    """The same, with the back-end's internal state migrated
    (backend-state=on): contrib/vhost-user-blk's synthetic state of 1 MiB,
    which each destination's back-end, started empty, loads."""

    name = "contrib-blk-state"
    restart_extra = ("--state-size", "0")

    def disk(self, refuse, side):
        first = not self.all_backends
        return self.contrib(refuse, ["--state-size", str(STATE_SIZE if first else 0),
                                     "--state-seed", str(self.n)],
                            "" if refuse else ",backend-state=on")

    def check_completed(self, src, dst):
        saved = states(self.backend_of(src), "saved")
        loaded = states(self.backend_of(dst), "loaded")
        if not saved or not loaded or saved[-1] != loaded[-1]:
            raise vt.TestError("%s saved %s, %s loaded %s" % (
                src.guest.name, saved[-1:], dst.guest.name, loaded[-1:]))


def states(backend, what):
    """[(size, sha256)] of the states contrib/vhost-user-blk logged."""
    return re.findall(r"state %s: (\d+) bytes, sha256 (\w+)" % what, backend.log())


class Qsd(Config):
    """Two storage daemons, one per side, that outlive the QEMUs."""

    inflight = True

    def __init__(self, wd):
        super().__init__(wd)
        self.qsd = [self.storage_daemon(i) for i in range(2)]

    def storage_daemon(self, i, name=None):
        return self.wd.add(vt.StorageDaemon(
            self.wd.path, name or "qsd%d" % i, self.img,
            self.path("qsd%d.sock" % i), iops=QSD_IOPS))

    def disk(self, refuse, side):
        sock = self.qsd[side].vhost_sock
        # Off is the default: left out, as a user would (and 10.2.2 must)
        im = True if self.inflight and not refuse else None
        return None, vt.vhost_user_blk_device(sock, inflight_migration=im)

    def long_lived(self):
        return self.qsd

    def backends(self):
        return self.qsd

    def restart_backend(self, node, completed):
        i = node.side
        os.unlink(self.qsd[i].vhost_sock)
        self.restarts += 1
        self.qsd[i] = self.storage_daemon(i, "qsd%d-restart%d" % (i, self.restarts))

    def backend_of(self, node):
        return self.qsd[node.side]


class QsdInflightOn(Qsd):
    name = "qsd-inflight-on"


class QsdInflightOff(Qsd):
    name = "qsd-inflight-off"
    inflight = False


class VirtioBlk(Config):
    name = "virtio-blk"
    faults = tuple(f for f in FAULTS if f not in BACKEND_FAULTS)

    def disk(self, refuse, side):
        props = "" if refuse else ",inflight-vmstate=on"
        return None, vt.virtio_blk(self.img, props, werror=None)


CONFIGS = {c.name: c for c in (ContribBlk, ContribBlkState, QsdInflightOn,
                                QsdInflightOff, VirtioBlk)}


class Soak:
    def __init__(self, cfg, rng, log):
        self.cfg = cfg
        self.rng = rng
        self.log = log
        self.outcomes = {}          # (fault, outcome): count
        self.downtimes = []
        self.samples = []           # [(round, [(name, fds, rss KiB)])]
        self.writes = 0
        self.hops = 0
        self.round = 0

    def soak_lines(self, guest):
        return [ln for ln in guest.vlm_lines() if ln.startswith(("soak ", "mismatch",
                                                                  "ioerr"))]

    def check_verifier(self, guest):
        for ln in self.soak_lines(guest):
            if ln.startswith(("mismatch", "ioerr")):
                raise vt.TestError("%s: %s\n%s" % (guest.name, ln,
                                                   guest.console()[-3000:]))

    def writes_of(self, guest):
        n = [int(m.group(1)) for m in
             (re.match(r"soak t=\d+ writes=(\d+)", ln) for ln in guest.vlm_lines()) if m]
        return n[-1] if n else 0

    def wait_writes(self, node, more=WRITERS):
        """Until the guest has completed more writes than it had."""
        g = node.guest
        start = max(self.writes, self.writes_of(g))
        vt.wait_for(lambda: self.writes_of(g) >= start + more, 90,
                    "%s: writes going on" % g.name)
        self.writes = self.writes_of(g)
        self.check_verifier(g)

    def check_backends(self):
        for b in self.cfg.backends():
            if "vu_panic" in b.log():
                raise vt.TestError("%s panicked:\n%s" % (b.name, b.log()[-2000:]))

    def sample(self, rnd, node):
        """The long-lived processes that no QEMU uses now: one that serves
        the guest's QEMU has that connection's fds and mappings."""
        busy = self.cfg.backend_of(node)
        self.samples.append((rnd, [(p.name, fd_count(p.pid), rss_kib(p.pid))
                                   for p in self.cfg.long_lived()
                                   if p.alive() and p is not busy]))

    def growth(self):
        """{name: ((fds, RSS) first, (fds, RSS) last)} over the samples."""
        seen = {}
        for _, procs in self.samples:
            for name, fds, rss in procs:
                seen.setdefault(name, [(fds, rss)]).append((fds, rss))
        return {name: (v[0], v[-1]) for name, v in seen.items()}

    def kill_in_precopy(self, src, dst):
        """Kill the destination, unless precopy is over: the source waits
        at pre-switchover then, and must not complete once the guest's
        new home is dead (a kill that came too late would kill the guest)."""
        status = src.guest.cmd("query-migrate")["status"]
        if status == "pre-switchover":
            src.guest.cmd("migrate-continue", state="pre-switchover")
            return
        dst.guest.kill()
        vt.wait_for(lambda: src.guest.cmd("query-migrate")["status"] in
                    ("pre-switchover",) + vt.ENDED, 60, "the migration to end")
        if src.guest.cmd("query-migrate")["status"] == "pre-switchover":
            src.guest.cmd("migrate_cancel")

    def hop(self, src, fault):
        """One round; returns (outcome, the node the guest runs on)."""
        cfg = self.cfg
        if fault == "src-backend-restart":
            # Killed with requests in flight, while the guest runs: the new
            # one resubmits them from the inflight region QEMU hands it
            time.sleep(self.rng.uniform(0, 1))
            os.kill(cfg.backend_of(src).pid, signal.SIGKILL)
            cfg.restart_backend(src, True)
            # QEMU reconnects within its reconnect-ms (1 s); until then a
            # migration is blocked.  The console's count lags by up to 1 s.
            time.sleep(RECONNECT_WAIT)
            self.wait_writes(src, 2 * WRITERS)
        dst = cfg.node(src, refuse=fault == "refuse")
        # The source keeps its capabilities from one migration to the next
        caps = [{"capability": "return-path", "state": True},
                {"capability": "pause-before-switchover",
                 "state": fault in ("dst-kill-precopy", "dst-kill-switchover")}]
        self.hops += 1
        path = cfg.path("mig%d" % self.hops)
        fds = fd_count(src.guest.pid)
        proxy = None
        uri = "unix:" + path
        if fault == "socket-cut":
            proxy = CutProxy(path, cfg.path("mig%d-dst" % self.hops))
            uri_dst = "unix:" + proxy.dst_path
        else:
            uri_dst = uri
        for g in (src.guest, dst.guest):
            g.cmd("migrate-set-capabilities", capabilities=caps)
        # A few seconds of precopy, for the faults to land in
        src.guest.cmd("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH})
        dst.guest.cmd("migrate-incoming", uri=uri_dst, **{"exit-on-error": False})
        if proxy:
            proxy.start()
        src.guest.cmd("migrate", uri=uri)
        if fault in ("dst-kill-precopy", "cancel", "dst-backend-kill", "socket-cut"):
            time.sleep(self.rng.uniform(0, FAULT_WINDOW))
            if fault == "dst-kill-precopy":
                self.kill_in_precopy(src, dst)
            elif fault == "cancel":
                src.guest.cmd("migrate_cancel")
            elif fault == "dst-backend-kill":
                os.kill(cfg.backend_of(dst).pid, signal.SIGKILL)
            elif fault == "socket-cut":
                proxy.cut()
        elif fault == "dst-kill-switchover":
            vt.wait_for(lambda: src.guest.cmd("query-migrate")["status"] in
                        ("pre-switchover",) + vt.ENDED, 120, "pre-switchover")
            dst.guest.kill()
            src.guest.cmd("migrate_cancel")
        try:
            info = vt.wait_migration(src.guest, 180)
        except vt.TestError as e:
            raise vt.TestError("%s\nsource: %s\ndestination (%s):\n%s" % (
                e, src.guest.cmd("query-migrate"),
                "alive" if dst.guest.alive() else "gone",
                dst.guest.log()[-3000:])) from e
        if proxy:
            proxy.close()
        outcome = info["status"]
        if fault == "dst-backend-kill":
            cfg.restart_backend(dst, outcome == "completed")
        self.log("  %s: %s%s" % (fault, outcome, (" (%s)" % info["error-desc"])
                                 if "error-desc" in info else ""))
        if outcome == "completed":
            vt.wait_for(lambda: dst.guest.cmd("query-status")["status"] == "running",
                        60, "destination running")
            self.downtimes.append(info.get("downtime", 0))
            if fault != "dst-backend-kill":
                # (a killed back-end takes what it loaded with it)
                cfg.check_completed(src, dst)
            self.check_verifier(src.guest)
            src.stop()
            self.wait_writes(dst)
            new = dst
        else:
            vt.wait_for(lambda: src.guest.cmd("query-status")["status"] == "running",
                        60, "source running after the failure")
            if dst.guest.alive():
                dst.guest.kill()
            if dst.backend:
                dst.backend.stop()
            # The migration's channels and fds are gone once it has ended
            vt.wait_for(lambda: fd_count(src.guest.pid) == fds, 30,
                        "%s: %d fds as before the migration (now %d)"
                        % (src.guest.name, fds, fd_count(src.guest.pid)))
            self.wait_writes(src)
            new = src
        self.check_backends()
        key = (fault, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1
        return new

    def run(self, faults):
        node = self.cfg.node()
        node.guest.wait_console(r"^ready", 180)
        self.wait_writes(node)
        self.sample(0, node)
        for i, fault in enumerate(faults, 1):
            self.round = i
            self.log("%s round %d/%d: %s" % (self.cfg.name, i, len(faults), fault))
            node = self.hop(node, fault)
            if i % 10 == 0:
                self.sample(i, node)
        # A daemon sees its last QEMU go a moment after that QEMU is gone
        def settled():
            self.samples = [x for x in self.samples if x[0] != len(faults)]
            self.sample(len(faults), node)
            return all(fd1 <= fd0 for (fd0, _), (fd1, _) in self.growth().values())
        try:
            vt.wait_for(settled, 10, "idle daemons' fds back to their first count")
        except vt.TestError:
            raise vt.TestError("fds grew: %s" % self.growth()) from None
        node.stop()


class CutProxy:
    """A relay between the migration's two sockets that can be cut."""

    def __init__(self, src_path, dst_path):
        self.dst_path = dst_path
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(src_path)
        self.listener.listen(1)
        self.conns = []
        self.stopped = False

    def start(self):
        import threading
        self.thread = threading.Thread(target=self.relay, daemon=True)
        self.thread.start()

    def relay(self):
        import selectors
        try:
            a, _ = self.listener.accept()
            b = socket.socket(socket.AF_UNIX)
            b.connect(self.dst_path)
        except OSError:
            return
        self.conns = [a, b]
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        while not self.stopped:
            for key, _ in sel.select(0.1):
                try:
                    data = key.fileobj.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    self.stopped = True
                    break
                try:
                    key.data.sendall(data)
                except OSError:
                    self.stopped = True
                    break

    def cut(self):
        self.stopped = True
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.cut()
        self.thread.join(5)
        for c in self.conns + [self.listener]:
            c.close()


def plan(cfg, rounds, rng, only=None):
    """The faults of each round: each once in a seeded order for rounds 0;
    else 40% none and the rest drawn evenly (of only, if given)."""
    faults = [f for f in cfg.faults if not only or f in only]
    if rounds == 0:
        rng.shuffle(faults)
        return faults
    others = [f for f in faults if f != "none"] or ["none"]
    return ["none" if rng.random() < 0.4 else rng.choice(others)
            for _ in range(rounds)]


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def report(results, seed, rounds, took):
    lines = ["Seed %d, %s, %d s in all." % (
        seed, "each fault once per configuration" if rounds == 0 else
        "%d rounds per configuration" % rounds, took), ""]
    outcomes = sorted({o for r in results.values() for (_, o) in r.outcomes})
    lines.append("| configuration | fault | " + " | ".join(outcomes) + " |")
    lines.append("| --- | --- |" + " --- |" * len(outcomes))
    for name, r in results.items():
        for fault in FAULTS:
            counts = [r.outcomes.get((fault, o), 0) for o in outcomes]
            if any(counts):
                lines.append("| %s | %s | %s |" % (name, fault,
                                                   " | ".join(map(str, counts))))
    lines += ["", "| configuration | migrations completed | downtime min | median "
              "| p90 | max | guest writes verified | long-lived processes: fds "
              "first -> last, RSS MiB first -> last |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        d = r.downtimes or [0]
        procs = ", ".join("%s %d -> %d, %.0f -> %.0f" % (name, a[0], b[0],
                                                         a[1] / 1024, b[1] / 1024)
                          for name, (a, b) in sorted(r.growth().items())) or "none"
        lines.append("| %s | %d | %d ms | %d ms | %d ms | %d ms | %d | %s |" % (
            name, len(r.downtimes), min(d), statistics.median(d),
            percentile(d, 90), max(d), r.writes, procs))
    return "\n".join(lines) + "\n"


def write_docs(text):
    doc = os.path.join(TOP, "docs", "soak.md")
    with open(doc) as f:
        s = f.read()
    a, b = "<!-- soak -->\n", "<!-- /soak -->"
    s = s[:s.index(a) + len(a)] + text + s[s.index(b):]
    with open(doc, "w") as f:
        f.write(s)


def keep_logs(path, name):
    """The logs and consoles of a failed run, for after the work directory
    is gone."""
    out = os.path.join(os.environ.get("VLM_CACHE", os.path.join(TOP, ".cache")),
                       "soak-failures", name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(path):
        if f.endswith((".log", ".console")):
            shutil.copy(os.path.join(path, f), out)
    print("soak.py: logs kept in %s" % out, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--seed", type=int,
                    default=int(os.environ.get("SOAK_SEED") or time.time()))
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--faults", help="only these faults (and none)")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    print("soak.py: seed %d (--seed %d repeats this run)" % (args.seed, args.seed),
          flush=True)
    rng = random.Random(args.seed)
    results = {}
    t0 = time.monotonic()
    for name in args.configs.split(","):
        with vt.Workdir() as wd:
            cfg = CONFIGS[name](wd)
            s = Soak(cfg, rng, lambda m: print("soak.py: " + m, flush=True))
            try:
                s.run(plan(cfg, args.rounds, rng,
                           args.faults.split(",") if args.faults else None))
            except Exception:
                keep_logs(wd.path, "%d-%s-round%d" % (args.seed, name, s.round))
                raise
            results[name] = s
    text = report(results, args.seed, args.rounds, time.monotonic() - t0)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

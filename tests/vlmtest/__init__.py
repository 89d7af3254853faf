"""Helpers for the virtio-lm tests, demo and benchmarks.

Real processes only: qemu-system-x86_64, qemu-storage-daemon and the
contrib back-ends from the build tree, driven over QMP with the client that
ships in QEMU's python/ directory.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORK_TREE = os.environ.get("WORK_TREE", os.path.join(TOP, "qemu"))
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))
CACHE = os.environ.get("VLM_CACHE", os.path.join(TOP, ".cache"))
sys.path.insert(0, os.path.join(WORK_TREE, "python"))

from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402

# VLM_QEMU runs the tests on another build of the patched QEMU (ASan).
QEMU = os.environ.get("VLM_QEMU") or os.path.join(BUILD, "qemu-system-x86_64")
# The unpatched base, built by scripts/build.sh --base
QEMU_BASE = os.path.join(CACHE, "build-base", "qemu-system-x86_64")
QSD_BASE = os.path.join(CACHE, "build-base", "storage-daemon", "qemu-storage-daemon")
# Upstream QEMU (the 11.0 line), built by scripts/upstream.sh
QEMU_UPSTREAM = os.path.join(CACHE, "build-upstream", "qemu-system-x86_64")
QEMU_IMG = os.path.join(BUILD, "qemu-img")
QSD = os.path.join(BUILD, "storage-daemon", "qemu-storage-daemon")
# VLM_VUB runs the tests on another build of contrib/vhost-user-blk (ASan).
VUB = os.environ.get("VLM_VUB") or os.path.join(BUILD, "contrib", "vhost-user-blk",
                                                "vhost-user-blk")
# The real vhost-user-fs back-end, built by scripts/virtiofsd.sh
VIRTIOFSD = os.path.join(CACHE, "virtiofsd", "virtiofsd")
KERNEL = os.path.join(CACHE, "guest", "vmlinuz")
INITRD = os.path.join(CACHE, "guest", "initramfs.gz")


class TestError(Exception):
    pass


def wait_for(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns a true value; raise after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


class Process:
    """A child process with a QMP monitor on a UNIX socket."""

    def __init__(self, name, workdir, argv, qmp_sock, log):
        self.name = name
        self.workdir = workdir
        self.qmp_sock = qmp_sock
        self.log_path = log
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=workdir, start_new_session=True)
        self.qmp = None
        self._connect()

    def _connect(self):
        def try_connect():
            if self.proc.poll() is not None:
                raise TestError("%s exited with %s:\n%s" %
                                (self.name, self.proc.returncode, self.log()))
            if not os.path.exists(self.qmp_sock):
                return None
            q = QEMUMonitorProtocol(self.qmp_sock)
            try:
                q.connect(negotiate=True)
            except Exception:  # noqa: BLE001 - not listening yet
                q.close()
                return None
            return q
        self.qmp = wait_for(try_connect, 30, "%s QMP" % self.name)

    def log(self):
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def cmd(self, name, **args):
        """Run a QMP command; raise TestError on an error reply."""
        r = self.qmp.cmd_raw(name, args or None)
        if "error" in r:
            raise TestError("%s: %s failed: %s" % (self.name, name, r["error"]["desc"]))
        return r["return"]

    def cmd_raw(self, name, **args):
        return self.qmp.cmd_raw(name, args or None)

    def events(self, wait=False):
        return self.qmp.get_events(wait=wait)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        if self._log.closed:
            return
        if self.proc.poll() is None:
            try:
                self.qmp.cmd_raw("quit")
            except Exception:  # noqa: BLE001 - already gone
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.qmp:
            try:
                self.qmp.close()
            except Exception:  # noqa: BLE001 - the peer quit first
                pass
        self._log.close()

    def kill(self, sig=signal.SIGKILL):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(10)


class StorageDaemon(Process):
    """qemu-storage-daemon serving a vhost-user-blk export on a UNIX socket."""

    def __init__(self, workdir, name, image, vhost_sock, iops=None,
                 num_queues=1, extra_export="", binary=QSD):
        qmp = os.path.join(workdir, name + ".qmp")
        node = "file0"
        argv = [binary,
                "--chardev", "socket,id=qmp0,path=%s,server=on,wait=off" % qmp,
                "--monitor", "chardev=qmp0",
                "--blockdev", "driver=file,node-name=%s,filename=%s,"
                "cache.direct=on,aio=native,locking=off" % (node, image)]
        if iops:
            # A throttle group makes every request wait: requests really
            # are in flight in the back-end for a while.
            argv += ["--object", "throttle-group,id=tg0,x-iops-total=%d" % iops,
                     "--blockdev", "driver=throttle,node-name=thr0,"
                     "throttle-group=tg0,file=%s" % node]
            node = "thr0"
        argv += ["--export", "type=vhost-user-blk,id=exp0,node-name=%s,"
                 "addr.type=unix,addr.path=%s,writable=on,num-queues=%d%s"
                 % (node, vhost_sock, num_queues, extra_export)]
        super().__init__(name, workdir, argv, qmp, os.path.join(workdir, name + ".log"))
        self.vhost_sock = vhost_sock
        self.node = node


class Daemon:
    """A vhost-user back-end without QMP, serving a UNIX socket; started
    with argv, its output in NAME.log."""

    def __init__(self, workdir, name, vhost_sock, argv):
        self.name = name
        self.vhost_sock = vhost_sock
        self.log_path = os.path.join(workdir, name + ".log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        wait_for(lambda: os.path.exists(vhost_sock) or not self.alive(), 10,
                 "%s socket" % name)
        if not self.alive():
            raise TestError("%s exited:\n%s" % (name, self.log()))

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=10):
        if self._log.closed:
            return
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.killpg(self.proc.pid, sig)
            self.proc.wait(10)


class ContribBlk(Daemon):
    """contrib/vhost-user-blk serving an image on a UNIX socket; with
    latency_ms, each request stays in flight in it that long."""

    def __init__(self, workdir, name, image, vhost_sock, latency_ms=0,
                 extra=()):
        super().__init__(workdir, name, vhost_sock,
                         [VUB, "--socket-path", vhost_sock, "--blk-file", image,
                          "--latency", str(latency_ms)] + list(extra))


class Virtiofsd(Daemon):
    """virtiofsd serving shared_dir on a UNIX socket, unprivileged (no
    sandbox, no seccomp), with its migration options in extra."""

    def __init__(self, workdir, name, shared_dir, vhost_sock, extra=()):
        super().__init__(workdir, name, vhost_sock,
                         [VIRTIOFSD, "--socket-path", vhost_sock,
                          "--shared-dir", shared_dir,
                          "--sandbox", "none", "--seccomp", "none"] + list(extra))


class Guest(Process):
    """qemu-system-x86_64 running the test guest (tests/guest/) under TCG."""

    def __init__(self, workdir, name, devices, mem="256M", incoming=False,
                 run=None, args=(), extra=(), binary=QEMU, kernel=True,
                 machine="pc", smp=1):
        qmp = os.path.join(workdir, name + ".qmp")
        self.console_path = os.path.join(workdir, name + ".console")
        argv = [binary, "-nodefaults", "-display", "none",
                "-accel", "tcg", "-cpu", "max", "-m", mem, "-smp", str(smp),
                # vhost-user needs guest RAM in shared memory.
                "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % mem,
                "-machine", "%s,memory-backend=mem" % machine,
                "-qmp", "unix:%s,server=on,wait=off" % qmp,
                "-chardev", "file,id=con0,path=%s" % self.console_path,
                "-serial", "chardev:con0"]
        # Without a kernel, the VM runs the firmware, which finds nothing to
        # boot and waits: a running VM that costs little CPU under TCG.
        if kernel:
            argv += ["-kernel", KERNEL, "-initrd", INITRD,
                     "-append", "console=ttyS0 quiet panic=-1 vlm.run=%s vlm.args=%s"
                     % (run or "none", ",".join(str(a) for a in args))]
        if incoming:
            argv += ["-incoming", "defer"]
        for d in devices:
            argv += d
        argv += list(extra)
        super().__init__(name, workdir, argv, qmp, os.path.join(workdir, name + ".log"))

    def console(self):
        try:
            with open(self.console_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def vlm_lines(self):
        return [ln.strip()[5:] for ln in self.console().splitlines()
                if ln.startswith("vlm: ")]

    def wait_console(self, pattern, timeout):
        rx = re.compile(pattern)

        def found():
            dead = not self.alive()
            for ln in self.vlm_lines():
                m = rx.search(ln)
                if m:
                    return m
            if dead:
                raise TestError("%s exited:\n%s\n%s" % (self.name, self.log(),
                                                        self.console()[-2000:]))
            return None
        return wait_for(found, timeout, "%r on %s console" % (pattern, self.name),
                        interval=0.2)

    def stats(self):
        """[(t, inflight, completed writes)] from the writer workload."""
        out = []
        for ln in self.vlm_lines():
            m = re.match(r"stat (\d+) inflight=(\d+) writes=(\d+)", ln)
            if m:
                out.append(tuple(int(x) for x in m.groups()))
        return out


def vhost_user_blk_device(sock, chardev="vub0", num_queues=1, extra=""):
    return ["-chardev", "socket,id=%s,path=%s,reconnect-ms=1000" % (chardev, sock),
            "-device", "vhost-user-blk-pci,id=blk0,chardev=%s,num-queues=%d%s"
            % (chardev, num_queues, extra)]


def vhost_user_fs_device(sock, tag, chardev="vuf0"):
    return ["-chardev", "socket,id=%s,path=%s" % (chardev, sock),
            "-device", "vhost-user-fs-pci,id=fs0,chardev=%s,tag=%s" % (chardev, tag)]


def create_image(path, size="64M"):
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "raw", path, size], check=True)


def migrate(src, dst, uri, timeout=120, caps=()):
    """Migrate src to dst (started with -incoming defer); return query-migrate."""
    for c in caps:
        for p in (src, dst):
            p.cmd("migrate-set-capabilities",
                  capabilities=[{"capability": c, "state": True}])
    dst.cmd("migrate-incoming", uri=uri)
    src.cmd("migrate", uri=uri)

    def done():
        info = src.cmd("query-migrate")
        st = info.get("status")
        if st in ("completed", "failed", "cancelled"):
            return info
        return None
    return wait_for(done, timeout, "migration", interval=0.1)


class Workdir:
    """A temporary directory removed on exit unless VLM_KEEP is set."""

    def __init__(self, prefix="vlm-"):
        self.path = tempfile.mkdtemp(prefix=prefix)
        self.procs = []

    def add(self, p):
        self.procs.append(p)
        return p

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Quit gracefully (sanitizers report at exit), kill what hangs.
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # noqa: BLE001
                p.kill()
        reports = [p.name for p in self.procs
                   if "Sanitizer" in p.log()]
        if not os.environ.get("VLM_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)
        if reports and exc[0] is None:
            raise TestError("sanitizer reports from %s" % ", ".join(reports))
        return False


def short_dir():
    """UNIX socket paths must stay under 108 bytes."""
    d = tempfile.mkdtemp(prefix="vlm", dir="/tmp")
    return d


def dumps(obj):
    return json.dumps(obj, indent=1, sort_keys=True)

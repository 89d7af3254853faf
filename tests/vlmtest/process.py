"""Child processes: a daemon with a QMP monitor (qemu-storage-daemon, which
QEMU's QEMUMachine cannot start), back-ends without one, and the temporary
directory that holds them and stops them.  Guests are QEMUMachines
(guest.py)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

from . import paths  # noqa: F401 - puts QEMU's python/ on sys.path
from qemu.qmp.legacy import QEMUMonitorProtocol  # noqa: E402

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


def read_text(path):
    """What a process wrote to path so far ("" before it created it)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""


class QMPCommands:
    """cmd() on top of a class's cmd_raw(): the return value, or TestError
    naming the process on an error reply."""

    def cmd(self, name, **args):
        r = self.cmd_raw(name, **args)
        if "error" in r:
            raise TestError("%s: %s failed: %s" % (self.name, name, r["error"]["desc"]))
        return r["return"]


class Process(QMPCommands):
    """A child process with a QMP monitor on a UNIX socket (guests use
    QEMUMachine instead, which adds options only qemu-system-* takes)."""

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
        return read_text(self.log_path)

    def cmd_raw(self, name, **args):
        return self.qmp.cmd_raw(name, args or None)

    def events(self, wait=False):
        return self.qmp.get_events(wait=wait)

    @property
    def pid(self):
        return self.proc.pid

    def exitcode(self):
        return self.proc.poll()

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
        return read_text(self.log_path)

    @property
    def pid(self):
        return self.proc.pid

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

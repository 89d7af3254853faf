"""The test guest (tests/guest/): Debian's kernel and a busybox initramfs,
or the firmware alone, under TCG."""

import json
import os
import re
import subprocess

from .paths import INITRD, KERNEL, QEMU, QEMU_IMG
from .process import QMPCommands, TestError, read_text, wait_for
from qemu.machine import QEMUMachine  # noqa: E402 - from QEMU's python/
from qemu.machine.machine import AbnormalShutdown, VMLaunchFailure  # noqa: E402

class Guest(QMPCommands):
    """qemu-system-x86_64 running the test guest (tests/guest/) under TCG,
    launched and shut down by QEMU's own QEMUMachine (python/qemu/machine),
    which also holds its QMP connection; its output is in NAME.log."""

    def __init__(self, workdir, name, devices, mem="256M", incoming=False,
                 run=None, args=(), extra=(), binary=QEMU, kernel=True,
                 machine="pc", smp=1):
        self.name = name
        self.workdir = workdir
        self.console_path = os.path.join(workdir, name + ".console")
        # QEMUMachine adds -display none, -vga none and the QMP monitor.
        argv = ["-nodefaults",
                "-accel", "tcg", "-cpu", "max", "-m", mem, "-smp", str(smp),
                # vhost-user needs guest RAM in shared memory.
                "-object", "memory-backend-memfd,id=mem,size=%s,share=on" % mem,
                "-machine", "%s,memory-backend=mem" % machine,
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
        self.log_path = os.path.join(workdir, name + ".log")
        self.vm = QEMUMachine(binary, argv, name=name, base_temp_dir=workdir,
                              log_dir=workdir)
        self._stopped = False
        try:
            self.vm.launch()
        except VMLaunchFailure as e:
            self._stopped = True
            raise TestError("%s exited with %s:\n%s" %
                            (name, e.exitcode, self.log())) from e

    @property
    def pid(self):
        return self.vm.get_pid()

    def exitcode(self):
        return self.vm.exitcode()

    def alive(self):
        return self.vm.is_running()

    def log(self):
        return read_text(self.log_path)

    def cmd_raw(self, name, **args):
        # args_dict: QMP argument names are passed as they are
        return self.vm.qmp(name, args_dict=args or None)

    def events(self, wait=False):
        return self.vm.get_qmp_events(wait=wait)

    def send_fd_scm(self, fd):
        self.vm.send_fd_scm(fd=fd)

    def stop(self, timeout=10):
        """Quit over QMP, kill what does not quit within timeout s; a guest
        that is already gone is only cleaned up after."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.vm.shutdown(timeout=timeout)
        except AbnormalShutdown:
            pass

    def kill(self):
        if not self._stopped:
            self._stopped = True
            self.vm.kill()

    def console(self):
        return read_text(self.console_path)

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


def create_image(path, size="64M"):
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "raw", path, size], check=True)


def create_overlay(path, backing):
    """A qcow2 image at path over the raw image backing: its writes stay in
    path, and backing keeps what was written to it before.  Its 4 KiB
    clusters hold exactly what the guest's 4 KiB writes wrote."""
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-F", "raw",
                    "-o", "cluster_size=4096", "-b", backing, path], check=True)


def overlay_blocks(path, limit):
    """{4 KiB block index: content} of what the overlay at path holds itself,
    below byte limit."""
    out = subprocess.run([QEMU_IMG, "map", "--output=json", path], check=True,
                         capture_output=True, text=True).stdout
    raw = path + ".raw"
    subprocess.run([QEMU_IMG, "convert", "-O", "raw", path, raw], check=True)
    blocks = {}
    with open(raw, "rb") as f:
        for e in json.loads(out):
            if e["depth"] != 0 or not e["data"]:
                continue
            for off in range(e["start"], min(e["start"] + e["length"], limit), 4096):
                f.seek(off)
                blocks[off // 4096] = f.read(4096)
    os.unlink(raw)
    return blocks

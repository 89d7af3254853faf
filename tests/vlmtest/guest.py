"""The test guest (tests/guest/): Debian's kernel and a busybox initramfs,
or the firmware alone, under TCG."""

import json
import os
import re
import subprocess

from .paths import INITRD, KERNEL, QEMU, QEMU_IMG
from .process import Process, TestError, wait_for

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

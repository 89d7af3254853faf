"""vhost-user back-ends: qemu-storage-daemon, contrib/vhost-user-blk and
virtiofsd."""

import os
import re

from .paths import QSD, VUB, VIRTIOFSD
from .process import Daemon, Process

class StorageDaemon(Process):
    """qemu-storage-daemon serving a vhost-user-blk export on a UNIX socket."""

    def __init__(self, workdir, name, image, vhost_sock, iops=None,
                 num_queues=1, extra_export="", binary=QSD, fmt="raw",
                 trace=(), issued_iops=None):
        """fmt "qcow2" opens image as a qcow2 file (with its backing file);
        trace names trace events to log.  issued_iops throttles the file
        below the format node, where the requests wait after the export has
        issued them."""
        qmp = os.path.join(workdir, name + ".qmp")
        node = "file0"
        argv = [binary,
                "--chardev", "socket,id=qmp0,path=%s,server=on,wait=off" % qmp,
                "--monitor", "chardev=qmp0",
                "--blockdev", "driver=file,node-name=%s,filename=%s,"
                "cache.direct=on,aio=native,locking=off" % (node, image)]
        for t in trace:
            argv += ["--trace", t]
        if issued_iops:
            argv += ["--object", "throttle-group,id=tg1,x-iops-total=%d"
                     % issued_iops,
                     "--blockdev", "driver=throttle,node-name=thr1,"
                     "throttle-group=tg1,file=%s" % node]
            node = "thr1"
        if fmt != "raw" or issued_iops:
            argv += ["--blockdev", "driver=%s,node-name=fmt0,file=%s" % (fmt, node)]
            node = "fmt0"
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

    REQUEST = re.compile(r"Received request: opcode=(\w+) \(\d+\), inode=(\d+)")

    def requests(self):
        """[(opcode, inode, replied OK, or None before the reply)] from the
        log of a virtiofsd run with --log-level debug.  Without a thread
        pool it handles one request at a time, so each reply follows its
        request (FORGET has none)."""
        out = []
        for ln in self.log().splitlines():
            m = self.REQUEST.search(ln)
            if m:
                out.append([m.group(1), int(m.group(2)), None])
            elif "Replying " in ln and out and out[-1][2] is None:
                out[-1][2] = "Replying OK" in ln
        return [tuple(r) for r in out]

"""The common part of the tests' setups: a work directory, a disk image,
and processes started in it, each named and given a socket by its name;
and the real streams that the stream tests and the fuzzing seeds start
from: one with an inflight region, one with held virtio-blk requests."""

import os

from .backends import ContribBlk, Virtiofsd
from .devices import vhost_user_blk_device, virtio_blk
from .guest import Guest, create_image
from .migration import migrate_to_file
from .process import Workdir, wait_for
from .streams import RegionStream


class Setup:
    """Base of a test's setup.  With image_size, self.img is a raw image of
    that size that the back-ends serve."""

    def __init__(self, wd, image_size=None):
        self.wd = wd
        self.img = None
        if image_size:
            self.img = self.path("disk.img")
            create_image(self.img, image_size)

    def path(self, name):
        return os.path.join(self.wd.path, name)

    def contrib_blk(self, name, latency_ms=0, extra=()):
        """contrib/vhost-user-blk on self.img, at NAME.sock."""
        return self.wd.add(ContribBlk(self.wd.path, name, self.img,
                                      self.path(name + ".sock"), latency_ms, extra))

    def virtiofsd(self, name, shared_dir, extra=()):
        """virtiofsd sharing shared_dir, at NAME.sock."""
        return self.wd.add(Virtiofsd(self.wd.path, name, shared_dir,
                                     self.path(name + ".sock"), extra))

    def guest(self, name, devices, **kwargs):
        return self.wd.add(Guest(self.wd.path, name, devices, **kwargs))


def save_region_stream(img, out, latency_ms=2000, in_flight=4):
    """Save to out the migration stream of a guest whose writes wait in
    contrib/vhost-user-blk --latency on img, migrated with
    inflight-migration=on once at least in_flight of them are in flight,
    so that its "vhost-user-blk/inflight" region records them; return the
    stream as a RegionStream."""
    with Workdir() as wd:
        b = wd.add(ContribBlk(wd.path, "vub", img,
                              os.path.join(wd.path, "vub.sock"), latency_ms))
        src = wd.add(Guest(wd.path, "src", [vhost_user_blk_device(
            b.vhost_sock, inflight_migration=True)], run="writer", args=(8, 30, 0)))
        src.wait_console(r"^ready", 120)
        wait_for(lambda: any(s[1] >= in_flight for s in src.stats()[-1:]), 60,
                 "requests in flight")
        migrate_to_file(src, out)
    with open(out, "rb") as f:
        return RegionStream(f.read())


def save_held_stream(img, out, props=",inflight-vmstate=on"):
    """Save to out the migration stream of a guest whose virtio-blk writes
    on img fail with werror=stop, so that the device holds its requests,
    and return its bytes."""
    with Workdir() as wd:
        src = wd.add(Guest(wd.path, "src", [virtio_blk(img, props, True)],
                           run="writer", args=(6, 3, 1)))
        wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                 90, "the source to stop on the I/O error")
        migrate_to_file(src, out)
    with open(out, "rb") as f:
        return f.read()

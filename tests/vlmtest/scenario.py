"""The common part of the tests' setups: a work directory, a disk image,
and processes started in it, each named and given a socket by its name."""

import os

from .backends import ContribBlk, Virtiofsd
from .guest import Guest, create_image


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

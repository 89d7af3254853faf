"""Helpers for the virtio-lm tests, demo and benchmarks.

Real processes only: qemu-system-x86_64, qemu-storage-daemon and the
contrib back-ends from the build tree, driven over QMP with the client and
the QEMUMachine class that ship in QEMU's python/ directory.  By concern:

  paths      the work tree, the builds, the binaries
  process    qemu-storage-daemon's QMP, back-ends without, the work directory
  backends   qemu-storage-daemon, contrib/vhost-user-blk, virtiofsd
  guest      the test guest (tests/guest/) on QEMU's QEMUMachine, disk images
  devices    command lines of the devices the tests migrate
  migration  migrating over a socket, to and from a file
  streams    reading and editing saved streams
  scenario   the common base of the tests' setups

Everything is also available from the package itself (vlmtest.Guest).
"""

from .paths import *  # noqa: F401,F403
from .process import *  # noqa: F401,F403
from .backends import *  # noqa: F401,F403
from .guest import *  # noqa: F401,F403
from .devices import *  # noqa: F401,F403
from .migration import *  # noqa: F401,F403
from .streams import *  # noqa: F401,F403
from .scenario import *  # noqa: F401,F403

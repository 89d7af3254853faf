"""Where things are: the work tree, the builds, the cache, the binaries."""

import os
import sys

TOP = os.path.realpath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORK_TREE = os.environ.get("WORK_TREE", os.path.join(TOP, "qemu"))
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))
CACHE = os.environ.get("VLM_CACHE", os.path.join(TOP, ".cache"))
# QEMU's own python/ (the QMP client)
sys.path.insert(0, os.path.join(WORK_TREE, "python"))

# VLM_QEMU runs the tests on another build of the patched QEMU (ASan).
QEMU = os.environ.get("VLM_QEMU") or os.path.join(BUILD, "qemu-system-x86_64")
# The unpatched base, built by scripts/build.sh --base
QEMU_BASE = os.path.join(CACHE, "build-base", "qemu-system-x86_64")
QSD_BASE = os.path.join(CACHE, "build-base", "storage-daemon", "qemu-storage-daemon")
# Upstream QEMU (the 11.0 line), built by scripts/upstream.sh
QEMU_UPSTREAM = os.path.join(CACHE, "build-upstream", "qemu-system-x86_64")
QEMU_IMG = os.path.join(BUILD, "qemu-img")
# VLM_QSD runs them on another build of qemu-storage-daemon (the base).
QSD = os.environ.get("VLM_QSD") or os.path.join(BUILD, "storage-daemon",
                                                "qemu-storage-daemon")
# VLM_VUB runs the tests on another build of contrib/vhost-user-blk (ASan).
VUB = os.environ.get("VLM_VUB") or os.path.join(BUILD, "contrib", "vhost-user-blk",
                                                "vhost-user-blk")
# The real vhost-user-fs back-end, built by scripts/virtiofsd.sh
VIRTIOFSD = os.path.join(CACHE, "virtiofsd", "virtiofsd")
KERNEL = os.path.join(CACHE, "guest", "vmlinuz")
INITRD = os.path.join(CACHE, "guest", "initramfs.gz")

#!/usr/bin/env python3
"""How long a virtio SUSPEND takes while slow storage holds requests.

One run of tests/qtest/virtio-suspend-test in perf mode: a libqos driver
makes 8 writes available to vhost-user-blk (contrib/vhost-user-blk with
1000 ms of latency, inflight-migration=on) and sets SUSPEND once they are
all taken.  By default QEMU finishes them first, as the virtio spec asks
(the suspend takes the storage's latency); with x-suspend-stop=on it keeps
them in flight and they complete after the resume.  Prints both times and
their ratio.
"""

import os
import re
import subprocess
import sys

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
BUILD = os.environ.get("BUILD_DIR", os.path.join(TOP, "build"))


def main():
    env = dict(os.environ,
               QTEST_QEMU_BINARY=os.path.join(BUILD, "qemu-system-x86_64"),
               QTEST_VHOST_USER_BLK_BINARY=os.path.join(
                   BUILD, "contrib/vhost-user-blk/vhost-user-blk"))
    out = subprocess.run([os.path.join(BUILD, "tests/qtest/virtio-suspend-test"),
                          "--tap", "-m", "perf", "-p", "/x86_64/virtio/suspend/perf"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, timeout=300, check=False).stdout
    m = re.search(r"suspend with (\d+) requests on (\d+) ms storage: finish them "
                  r"([\d.]+) ms, x-suspend-stop ([\d.]+) ms, ratio ([\d.]+)", out)
    if not m or "\nok 1" not in out:
        print(out)
        print("suspend_latency: the perf case failed")
        return 1
    n, lat, wait, stop, ratio = m.groups()
    print("virtio SUSPEND with %s requests held by %s ms storage (vhost-user-blk)"
          % (n, lat))
    print("  %-38s %9s ms" % ("finish them first (default)", wait))
    print("  %-38s %9s ms" % ("keep them in flight (x-suspend-stop)", stop))
    print("  ratio x-suspend-stop / default: %s" % ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())

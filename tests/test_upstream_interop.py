"""Live migration between virtio-lm and upstream QEMU (the 11.0 line, built
from ../shared/qemu-upstream by scripts/upstream.sh) with vhost-user-blk
requests in flight.  Both speak upstream's "vhost-user-blk/inflight"
subsection; both sides use the series' back-ends (upstream's own have no
GET_VRING_BASE_INFLIGHT), and a machine type both know.

A real Linux guest keeps O_DIRECT writers busy; its data must verify on the
destination, every request must complete exactly once (Linux would report
a used id it did not expect, a back-end a completion on a stopped vring),
and nothing may be left hanging: the writers finish within 40 s of the
switchover."""

import os
import re

import pytest

import vlmtest as vt

MACHINE = "pc-i440fx-10.2"
LATENCY_MS = 1000
WRITERS = 8
SECONDS = 6
SUB = b"vhost-user-blk/inflight"

pytestmark = pytest.mark.skipif(not os.path.exists(vt.QEMU_UPSTREAM),
                                reason="no upstream build (scripts/upstream.sh)")

BINARIES = {"lm": vt.QEMU, "up": vt.QEMU_UPSTREAM}


def backend(wd, kind, name, img, extra=()):
    sock = os.path.join(wd.path, name + ".sock")
    if kind == "contrib":
        return wd.add(vt.ContribBlk(wd.path, name, img, sock, LATENCY_MS,
                                    extra=extra))
    # 5 IOPS: the writers keep its throttle group full even on a guest
    # too slow to fork them at 20 a second.
    return wd.add(vt.StorageDaemon(wd.path, name, img, sock, iops=5))


def guest(wd, name, binary, sock, prop, incoming=False):
    extra = ",inflight-migration=%s" % ("on" if prop else "off")
    return wd.add(vt.Guest(wd.path, name,
                           [vt.vhost_user_blk_device(sock, extra=extra)],
                           incoming=incoming, run="writer",
                           args=(WRITERS, SECONDS, 0), binary=binary,
                           machine=MACHINE))


def assert_clean(dst, *backends):
    """The writers finished within 40 s of the switchover, the data
    verifies, and nothing was completed twice or after its vring stopped."""
    m = dst.wait_console(r"^verify (\w+) (\d+) (\d+)", SECONDS + 40)
    assert m.group(1) == "ok" and int(m.group(2)) == WRITERS, \
        dst.console()[-2000:]
    lines = dst.vlm_lines()
    assert not any(ln.startswith("ioerr") for ln in lines), lines
    assert not re.search(r"is not a head|virtio.*broken|I/O error",
                         dst.console()), dst.console()[-2000:]
    for b in backends:
        assert "vu_panic" not in b.log(), b.log()


def migrate_busy(wd, src, dst):
    src.wait_console(r"^ready", 120)
    vt.wait_for(lambda: any(s[1] >= 4 for s in src.stats()[-1:]), 60,
                "requests in flight")
    return vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"),
                      caps=("return-path",))


@pytest.mark.parametrize("kind", ["contrib", "qsd"])
@pytest.mark.parametrize("prop", [True, False], ids=["on", "off"])
@pytest.mark.parametrize("direction", ["lm-to-up", "up-to-lm"])
def test_migrate_with_requests_in_flight(direction, prop, kind):
    """With inflight-migration=on the requests in flight travel in
    upstream's subsection either way; off, the back-end finishes them at
    the stop, as 10.2.2 and 11.0 expect."""
    s, d = direction.split("-to-")
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        b1 = backend(wd, kind, "b1", img)
        b2 = backend(wd, kind, "b2", img)
        src = guest(wd, "src", BINARIES[s], b1.vhost_sock, prop)
        dst = guest(wd, "dst", BINARIES[d], b2.vhost_sock, prop, incoming=True)
        info = migrate_busy(wd, src, dst)
        assert info["status"] == "completed", (info, dst.log())
        assert_clean(dst, b1, b2)


@pytest.mark.parametrize("direction", ["lm-to-up", "up-to-lm", "lm-to-lm"])
@pytest.mark.parametrize("skip_drain", ["src", "dst"])
def test_mixed_back_ends(direction, skip_drain):
    """One side's back-end offers GET_VRING_BASE_SKIP_DRAIN, the other's
    only GET_VRING_BASE_INFLIGHT (--no-skip-drain, as written for 11.0):
    the region is the same either way."""
    s, d = direction.split("-to-")
    no = ("--no-skip-drain",)
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        b1 = backend(wd, "contrib", "b1", img, () if skip_drain == "src" else no)
        b2 = backend(wd, "contrib", "b2", img, () if skip_drain == "dst" else no)
        src = guest(wd, "src", BINARIES[s], b1.vhost_sock, True)
        dst = guest(wd, "dst", BINARIES[d], b2.vhost_sock, True, incoming=True)
        info = migrate_busy(wd, src, dst)
        assert info["status"] == "completed", (info, dst.log())
        assert_clean(dst, b1, b2)


@pytest.mark.parametrize("binary", ["lm", "up"])
def test_stream_is_upstreams(binary):
    """The subsection is the same bytes whichever QEMU writes it: the same
    region from the same back-end state gives the same subsection."""
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        b1 = backend(wd, "contrib", "b1", img)
        src = guest(wd, "src", BINARIES[binary], b1.vhost_sock, True)
        src.wait_console(r"^ready", 120)
        vt.wait_for(lambda: any(s[1] >= 4 for s in src.stats()[-1:]), 60,
                    "requests in flight")
        path = os.path.join(wd.path, "out.mig")
        src.cmd("migrate", uri="file:" + path)
        vt.wait_for(lambda: src.cmd("query-migrate")["status"] == "completed",
                    60, "migration to file")
        with open(path, "rb") as f:
            data = f.read()
        i = data.find(bytes([0x05, len(SUB)]) + SUB)
        assert i > 0, "no %s subsection" % SUB
        p = i + 2 + len(SUB)
        version = int.from_bytes(data[p:p + 4], "big")
        size = int.from_bytes(data[p + 4:p + 12], "big")
        queue_size = int.from_bytes(data[p + 12:p + 14], "big")
        buf = b"vhost-inflight-region/buffer"
        assert data[p + 14:p + 16 + len(buf)] == bytes([0x05, len(buf)]) + buf
        q = p + 16 + len(buf)
        assert (version, queue_size) == (1, 128)
        assert int.from_bytes(data[q:q + 4], "big") == 0
        # libvhost-user's region for one queue of 128: 64-byte aligned
        assert size == (16 + 16 * 128 + 2 + 63) // 64 * 64
        region = data[q + 4:q + 4 + size]
        inflight = [region[16 + 16 * j] for j in range(128)]
        assert sum(inflight) >= 4 and set(inflight) <= {0, 1}

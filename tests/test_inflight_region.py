"""Malformed vhost-user-blk inflight regions in the "vhost-user-blk/inflight"
subsection (upstream's stream format): each fails the incoming migration
with an error that names the device and the queue, before any back-end
sees the region, and the destination does not crash.

A real stream is made once: a guest whose writes wait in
contrib/vhost-user-blk --latency is migrated to a file with
inflight-migration=on, so the region records requests in flight.  Each
case edits the region and loads the result into a fresh destination
(exit-on-error=false, -S) whose back-end is connected.  The asan suite
runs it again on AddressSanitizer builds.
"""

import os
import shutil
import struct

import pytest

import vlmtest as vt

# The asan suite runs the whole module again on the ASan builds.
pytestmark = pytest.mark.asan

DEV = "virtio-blk /machine/peripheral/blk0/virtio-backend"
DESC = vt.REGION_DESC


@pytest.fixture(scope="module")
def stream(request, tmp_path_factory):
    d = vt.short_dir()
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    img = os.path.join(d, "disk.img")
    vt.create_image(img)
    out = str(tmp_path_factory.mktemp("stream") / "region.mig")
    s = vt.save_region_stream(img, out)
    assert s.queue_size == 128 and len(s.inflight) >= 4, vars(s)
    return d, img, s


def load(d, img, data, name):
    """Load data into a fresh destination; return (status, error, alive)."""
    path = os.path.join(d, name + ".mig")
    with open(path, "wb") as f:
        f.write(data)
    with vt.Workdir() as wd:
        b = wd.add(vt.ContribBlk(wd.path, "vub", img,
                                 os.path.join(wd.path, "vub.sock"), 0))
        dst = wd.add(vt.Guest(wd.path, "dst", [vt.vhost_user_blk_device(b.vhost_sock, inflight_migration=True)],
                              incoming=True, extra=("-S",)))
        r = vt.load_result(dst, path)
        assert "vu_panic" not in b.log(), b.log()
        return r


def test_good_region_loads(stream):
    d, img, s = stream
    status, err, alive = load(d, img, s.data, "good")
    assert status == "completed", err
    assert alive


def set_flag(s, j, v):
    return s.put(s.desc(j), "B", v)


def resize(s, extra):
    """The region grown by extra zero bytes, its size field to match"""
    data = s.put(s.size_off, ">Q", s.size + extra)
    return data[:s.end] + bytes(extra) + data[s.end:]


def no_buffer(s):
    return s.data[:s.buf_hdr] + s.data[s.end:]


def free_head(s):
    return next(j for j in range(s.queue_size) if j not in s.inflight)


def same_counter(s):
    a, b = s.inflight[:2]
    off = s.desc(a) + 8
    return s.put(s.desc(b) + 8, "=Q", struct.unpack("=Q", s.data[off:off + 8])[0])


# case: (mutation, what the error must say after the device's name)
CASES = {
    "size-huge": (lambda s: s.put(s.size_off, ">Q", 1 << 30), "exceeds"),
    "size-too-large": (lambda s: resize(s, 4096),
                       "does not hold 1 queues of 128 descriptors"),
    "size-too-small": (lambda s: s.put(s.size_off, ">Q", 64)[:s.region + 64] +
                       s.data[s.end:], "does not hold 1 queues"),
    "queue-size-zero": (lambda s: s.put(s.qs_off, ">H", 0),
                        "for queues of 0 descriptors"),
    "queue-size-small": (lambda s: s.put(s.qs_off, ">H", 64),
                         "queue 0: ring of 128 descriptors"),
    "version": (lambda s: s.put(s.region + 8, "=H", 2),
                "queue 0: inflight region version 2 unknown"),
    "desc-num": (lambda s: s.put(s.region + 10, "=H", 64),
                 "queue 0: inflight region for 64 descriptors"),
    "last-batch-head": (lambda s: s.put(s.region + 12, "=H", 200),
                        "queue 0: last batch head 200 beyond"),
    "used-idx-behind": (lambda s: s.put(s.region + 14, "=H", (struct.unpack(
        "=H", s.data[s.region + 14:s.region + 16])[0] - 200) & 0xffff),
        "is 200 behind"),
    "one-more-in-flight": (lambda s: set_flag(s, free_head(s), 1),
                           "requests in flight, the ring"),
    "one-less-in-flight": (lambda s: set_flag(s, s.inflight[0], 0),
                           "requests in flight, the ring"),
    "in-flight-state": (lambda s: set_flag(s, s.inflight[0], 7),
                        "has in-flight state 7"),
    "same-counter": (same_counter, "have the same counter"),
    "no-buffer": (no_buffer, "without its buffer subsection"),
    "truncated": (lambda s: s.data[:s.region + 100], None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_region_fails_cleanly(stream, case):
    d, img, s = stream
    mutate, expect = CASES[case]
    status, err, alive = load(d, img, mutate(s), case)
    assert status == "failed", err
    assert alive, "destination died:\n" + err
    assert "Assertion" not in err and "Segmentation" not in err, err
    if expect:
        assert expect in err, err
    if case not in GENERIC:
        # vhost_inflight_check() found it: it names the device
        assert DEV + ": " in err, err


# Refused by the stream's parsing, before the device's check
GENERIC = {"size-huge", "no-buffer", "truncated"}

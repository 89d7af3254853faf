"""Malformed in-flight elements, in the "virtio/inflight" subsection and in
the legacy VirtQueueElementOld encoding: each fails the incoming migration
with a clear error, and the destination does not crash.

A real stream is made once: a guest whose virtio-blk writes fail with
werror=stop (so requests are held in the device) is migrated to a file
with inflight-vmstate=on.  Each case edits the subsection's bytes and
loads the result into a fresh destination with exit-on-error=false.
"""

import os
import re
import shutil
import struct

import pytest

import vlmtest as vt
from test_virtio_blk_inflight import blk

SUB = b"virtio/inflight"
PROPS = ",inflight-vmstate=on"


class Stream:
    """The bytes of a migration stream and the layout of its in-flight
    subsection (one queue list, then the rest of the stream)."""

    def __init__(self, data):
        self.data = data
        hdr = bytes([0x05, len(SUB)]) + SUB
        i = data.find(hdr)
        assert i >= 0, "no virtio/inflight subsection in the stream"
        assert data.find(hdr, i + 1) < 0
        self.sub = i
        p = i + len(hdr)
        self.version = struct.unpack(">I", data[p:p + 4])[0]
        p += 4
        self.nvqs_off = p
        self.nvqs = struct.unpack(">H", data[p:p + 2])[0]
        p += 2
        self.elems = []            # per element: (offset of marker, end)
        for _q in range(self.nvqs):
            while data[p] == 1:
                start = p
                head, ndescs, out_num, nsegs = struct.unpack(">HHHH", data[p + 1:p + 9])
                p += 9 + 12 * nsegs
                self.elems.append((start, p, head, nsegs))
            assert data[p] == 0
            p += 1
        self.end = p

    def elem_field(self, k, field):
        """Offset of a u16 field (0 head, 1 ndescs, 2 out_num, 3 nsegs)."""
        return self.elems[k][0] + 1 + 2 * field

    def seg(self, k, j):
        """Offset of segment j of element k (u64 addr, u32 len)."""
        return self.elems[k][0] + 9 + 12 * j


def put16(data, off, v):
    return data[:off] + struct.pack(">H", v) + data[off + 2:]


def put32(data, off, v):
    return data[:off] + struct.pack(">I", v) + data[off + 4:]


def put64(data, off, v):
    return data[:off] + struct.pack(">Q", v) + data[off + 8:]


def held_stream(d, img, out, props):
    """Migrate a guest with virtio-blk requests held (werror=stop) to out."""
    with vt.Workdir() as wd:
        src = wd.add(vt.Guest(wd.path, "src", [blk(img, True, props)],
                              run="writer", args=(6, 3, 1)))
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    90, "the source to stop on the I/O error")
        src.cmd("migrate", uri="file:" + out)
        vt.wait_for(lambda: src.cmd("query-migrate")["status"] == "completed",
                    60, "migration to file")
    with open(out, "rb") as f:
        return f.read()


def make_stream(request, tmp_path_factory, name, props):
    """(directory, image, stream bytes) for a fresh held-request stream."""
    d = vt.short_dir()
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    img = os.path.join(d, "disk.img")
    vt.create_image(img)
    out = str(tmp_path_factory.mktemp("stream") / name)
    return d, img, held_stream(d, img, out, props)


@pytest.fixture(scope="module")
def stream(request, tmp_path_factory):
    d, img, data = make_stream(request, tmp_path_factory, "good.mig", PROPS)
    s = Stream(data)
    assert s.version == 1 and s.nvqs == 1 and len(s.elems) >= 1, vars(s)
    return d, img, s


def load(d, img, data, name, props=PROPS):
    """Load data into a fresh destination; return (status, error, alive)."""
    path = os.path.join(d, name + ".mig")
    with open(path, "wb") as f:
        f.write(data)
    with vt.Workdir() as wd:
        # -S: the guest stays paused after a successful load (it would
        # otherwise run its empty workload and power off).
        dst = wd.add(vt.Guest(wd.path, "dst", [blk(img, False, props)], incoming=True,
                              extra=("-S",)))
        dst.cmd("migrate-incoming", uri="file:" + path, **{"exit-on-error": False})

        def done():
            st = dst.cmd("query-migrate").get("status")
            return st in ("completed", "failed") and st
        status = vt.wait_for(done, 60, "incoming migration")
        info = dst.cmd("query-migrate")
        alive = dst.alive()
        dst.stop()
        log = dst.log()
        # On a sanitizer build, what it reports at exit fails the case.
        assert "Sanitizer" not in log, log
        return status, info.get("error-desc", "") + "\n" + log, alive


def test_good_stream_loads(stream):
    d, img, s = stream
    status, err, alive = load(d, img, s.data, "good")
    assert status == "completed", err
    assert alive


def drop_last_elem(s):
    start, end, _, _ = s.elems[-1]
    return s.data[:start] + s.data[end:]


def dup_first_elem(s):
    start, end, _, _ = s.elems[0]
    return s.data[:end] + s.data[start:end] + s.data[end:]


def extra_queue(s):
    # A second queue list holding a copy of the first element: the device
    # has one queue.
    start, end, _, _ = s.elems[0]
    d = put16(s.data, s.nvqs_off, 2)
    return d[:s.end] + d[start:end] + b"\x00" + d[s.end:]


CASES = {
    "nvqs-too-large": (lambda s: put16(s.data, s.nvqs_off, 0xffff),
                       "in-flight queue count"),
    "nsegs-zero": (lambda s: put16(s.data, s.elem_field(0, 3), 0), "segment count"),
    "nsegs-too-large": (lambda s: put16(s.data, s.elem_field(0, 3), 1025),
                        "segment count"),
    "out-num-above-nsegs": (lambda s: put16(s.data, s.elem_field(0, 2), 0x100),
                            "segment count"),
    "head-out-of-range": (lambda s: put16(s.data, s.elem_field(0, 0), 0x7fff),
                          "out of range"),
    "head-twice": (dup_first_elem, "appears twice"),
    "seg-outside-ram": (lambda s: put64(s.data, s.seg(0, 0), 0xfff0000000),
                        "is not in guest memory"),
    "seg-len-huge": (lambda s: put32(s.data, s.seg(0, 1) + 8, 0xfffffff0),
                     "is not in guest memory"),
    "seg-len-zero": (lambda s: put32(s.data, s.seg(0, 0) + 8, 0),
                     "is not in guest memory"),
    "element-missing": (drop_last_elem, "last_avail_idx"),
    "queue-not-in-use": (extra_queue, "which is not in use"),
    "truncated": (lambda s: s.data[:s.elems[0][0] + 20], None),
    "version-too-new": (lambda s: put32(s.data, s.nvqs_off - 4, 2), "too new"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_stream_fails_cleanly(stream, case):
    d, img, s = stream
    mutate, expect = CASES[case]
    status, err, alive = load(d, img, mutate(s), case)
    assert status == "failed", err
    assert alive, "destination died:\n" + err
    assert "Assertion" not in err and "Segmentation" not in err, err
    if expect:
        assert expect in err, err


# The legacy encoding: VirtQueueElementOld in host layout (x86-64: three
# u32, 4 bytes of padding, in_addr[1024], out_addr[1024], in_sg[1024],
# out_sg[1024]), after a 1 byte marker in virtio-blk's request list.
OLD_IN_ADDR, OLD_OUT_ADDR, OLD_IN_SG, OLD_OUT_SG = 16, 8208, 16400, 32784
LEGACY = ",inflight-vmstate=off"


@pytest.fixture(scope="module")
def legacy(request, tmp_path_factory):
    d, img, data = make_stream(request, tmp_path_factory, "legacy.mig", LEGACY)
    assert SUB not in data
    dev = data.find(b"0000:00:04.0/virtio-blk")
    # A block write: 2 device-readable segments, 1 device-writable.
    m = re.compile(rb"\x01(.{4})\x02\x00\x00\x00\x01\x00\x00\x00",
                   re.S).search(data, dev)
    assert dev > 0 and m, "no legacy element in the stream"
    return d, img, data, m.start() + 1


LEGACY_CASES = {
    "too-many-segments": (lambda d, e: put32le(d, e + 8, 2000), "segments"),
    "no-segments": (lambda d, e: put32le(put32le(d, e + 4, 0), e + 8, 0),
                    "has 0+0 segments"),
    "seg-outside-ram": (lambda d, e: put64le(d, e + OLD_OUT_ADDR, 0xfff0000000),
                        "is not in guest memory"),
    "seg-len-huge": (lambda d, e: put64le(d, e + OLD_IN_SG + 8, 1 << 40),
                     "is not in guest memory"),
    "truncated": (lambda d, e: d[:e + 100], None),
}


def put32le(data, off, v):
    return data[:off] + struct.pack("<I", v) + data[off + 4:]


def put64le(data, off, v):
    return data[:off] + struct.pack("<Q", v) + data[off + 8:]


def test_legacy_good_stream_loads(legacy):
    d, img, data, _ = legacy
    status, err, alive = load(d, img, data, "legacy-good", LEGACY)
    assert status == "completed", err
    assert alive


@pytest.mark.parametrize("case", sorted(LEGACY_CASES))
def test_legacy_malformed_element_fails_cleanly(legacy, case):
    d, img, data, e = legacy
    mutate, expect = LEGACY_CASES[case]
    status, err, alive = load(d, img, mutate(data, e), "legacy-" + case, LEGACY)
    assert status == "failed", err
    assert alive, "destination died:\n" + err
    assert "Assertion" not in err, err
    if expect:
        assert expect in err, err

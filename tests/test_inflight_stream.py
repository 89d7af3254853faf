"""Malformed "virtio/inflight" subsections: each fails the incoming
migration with a clear error, and the destination does not crash.

A real stream is made once: a guest whose virtio-blk writes fail with
werror=stop (so requests are held in the device) is migrated to a file
with inflight-vmstate=on.  Each case edits the subsection's bytes and
loads the result into a fresh destination with exit-on-error=false.
"""

import os
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


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    d = vt.short_dir()
    img = os.path.join(d, "disk.img")
    vt.create_image(img)
    out = str(tmp_path_factory.mktemp("stream") / "good.mig")
    with vt.Workdir() as wd:
        src = wd.add(vt.Guest(wd.path, "src", [blk(img, True, PROPS)],
                              run="writer", args=(6, 3, 1)))
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    90, "the source to stop on the I/O error")
        src.cmd("migrate", uri="file:" + out)
        vt.wait_for(lambda: src.cmd("query-migrate")["status"] == "completed",
                    60, "migration to file")
    with open(out, "rb") as f:
        s = Stream(f.read())
    assert s.version == 1 and s.nvqs == 1 and len(s.elems) >= 1, vars(s)
    return d, img, s


def load(d, img, data, name):
    """Load data into a fresh destination; return (status, error, alive)."""
    path = os.path.join(d, name + ".mig")
    with open(path, "wb") as f:
        f.write(data)
    with vt.Workdir() as wd:
        dst = wd.add(vt.Guest(wd.path, "dst", [blk(img, False, PROPS)], incoming=True))
        dst.cmd("migrate-incoming", uri="file:" + path, **{"exit-on-error": False})

        def done():
            st = dst.cmd("query-migrate").get("status")
            return st in ("completed", "failed") and st
        status = vt.wait_for(done, 60, "incoming migration")
        info = dst.cmd("query-migrate")
        log = dst.log()
        alive = dst.alive()
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

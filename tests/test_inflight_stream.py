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

import pytest

import vlmtest as vt

# The asan suite runs the whole module again on the ASan builds.
pytestmark = pytest.mark.asan

SUB = vt.INFLIGHT_SUB
PROPS = ",inflight-vmstate=on"


def make_stream(request, tmp_path_factory, name, props):
    """(directory, image, stream bytes) for a fresh held-request stream."""
    d = vt.short_dir()
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    img = os.path.join(d, "disk.img")
    vt.create_image(img)
    out = str(tmp_path_factory.mktemp("stream") / name)
    return d, img, vt.save_held_stream(img, out, props)


@pytest.fixture(scope="module")
def stream(request, tmp_path_factory):
    d, img, data = make_stream(request, tmp_path_factory, "good.mig", PROPS)
    s = vt.InflightStream(data)
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
        dst = wd.add(vt.Guest(wd.path, "dst", [vt.virtio_blk(img, props, False)], incoming=True,
                              extra=("-S",)))
        return vt.load_result(dst, path)


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
    d = vt.put(s.data, s.nvqs_off, ">H", 2)
    return d[:s.end] + d[start:end] + b"\x00" + d[s.end:]


CASES = {
    "nvqs-too-large": (lambda s: vt.put(s.data, s.nvqs_off, ">H", 0xffff),
                       "in-flight queue count"),
    "nsegs-zero": (lambda s: vt.put(s.data, s.elem_field(0, 3), ">H", 0), "segment count"),
    "nsegs-too-large": (lambda s: vt.put(s.data, s.elem_field(0, 3), ">H", 1025),
                        "segment count"),
    "out-num-above-nsegs": (lambda s: vt.put(s.data, s.elem_field(0, 2), ">H", 0x100),
                            "segment count"),
    "head-out-of-range": (lambda s: vt.put(s.data, s.elem_field(0, 0), ">H", 0x7fff),
                          "out of range"),
    "head-twice": (dup_first_elem, "appears twice"),
    "seg-outside-ram": (lambda s: vt.put(s.data, s.seg(0, 0), ">Q", 0xfff0000000),
                        "is not in guest memory"),
    "seg-len-huge": (lambda s: vt.put(s.data, s.seg(0, 1) + 8, ">I", 0xfffffff0),
                     "is not in guest memory"),
    "seg-len-zero": (lambda s: vt.put(s.data, s.seg(0, 0) + 8, ">I", 0),
                     "is not in guest memory"),
    "element-missing": (drop_last_elem, "last_avail_idx"),
    "queue-not-in-use": (extra_queue, "which is not in use"),
    "truncated": (lambda s: s.data[:s.elems[0][0] + 20], None),
    "version-too-new": (lambda s: vt.put(s.data, s.nvqs_off - 4, ">I", 2), "too new"),
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
    "too-many-segments": (lambda d, e: vt.put(d, e + 8, "<I", 2000), "segments"),
    "no-segments": (lambda d, e: vt.put(vt.put(d, e + 4, "<I", 0), e + 8, "<I", 0),
                    "has 0+0 segments"),
    "seg-outside-ram": (lambda d, e: vt.put(d, e + OLD_OUT_ADDR, "<Q", 0xfff0000000),
                        "is not in guest memory"),
    "seg-len-huge": (lambda d, e: vt.put(d, e + OLD_IN_SG + 8, "<Q", 1 << 40),
                     "is not in guest memory"),
    "truncated": (lambda d, e: d[:e + 100], None),
}


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

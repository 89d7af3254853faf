#!/usr/bin/env python3
"""Stream bytes per in-flight element: the "virtio/inflight" subsection
(inflight-vmstate=on) against the legacy VirtQueueElementOld encoding.

One run of each: a real guest whose virtio-blk writes fail with
werror=stop, so its requests are held in the device; the stopped VM is
migrated to a file, and the virtio-blk section of the stream is measured.
Prints a table and the ratio; exits non-zero if the target (500x) is
missed.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
import vlmtest as vt  # noqa: E402

IDSTR = b"0000:00:04.0/virtio-blk"


def device_section(data):
    """(start, end) of the virtio-blk device section's payload."""
    i = data.find(bytes([len(IDSTR)]) + IDSTR)
    assert i > 5 and data[i - 5] == 0x04, "no full section for virtio-blk"
    sid = data[i - 4:i]
    start = i + 1 + len(IDSTR) + 8
    end = data.find(b"\x7e" + sid, start)
    assert end > start, "no section footer"
    return start, end


def run(props, writers):
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img)
        src = wd.add(vt.Guest(wd.path, "src", [vt.virtio_blk(img, props, True)],
                              run="writer", args=(writers, 3, 1)))
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "io-error",
                    90, "the source to stop on the I/O error")
        out = os.path.join(wd.path, "stream")
        vt.migrate_to_file(src, out)
        with open(out, "rb") as f:
            return f.read()


def main():
    writers = 1
    legacy = run(",inflight-vmstate=off", writers)
    new = run(",inflight-vmstate=on", writers)
    ls, le = device_section(legacy)
    ns, ne = device_section(new)
    s = vt.InflightStream(new)
    n = len(s.elems)
    elem_bytes = sum(end - start for start, end, _, _ in s.elems)
    sub_bytes = s.end - s.sub
    # The same device state without any element: the new section minus
    # its subsection.  The legacy section's surplus over it is the
    # legacy encoding of the held elements.
    empty = (ne - ns) - sub_bytes
    legacy_elems = (le - ls) - empty
    n_legacy = round(legacy_elems / (49168 + 1))
    segs = [nsegs for _, _, _, nsegs in s.elems]
    print("virtio-blk section of the migration stream, requests held by werror=stop")
    print()
    print("| encoding | held requests | section bytes | bytes per request |")
    print("| --- | --- | --- | --- |")
    print("| legacy VirtQueueElementOld | %d | %d | %.0f |"
          % (n_legacy, le - ls, legacy_elems / max(n_legacy, 1)))
    print("| virtio/inflight subsection | %d | %d | %.0f (+%d per device) |"
          % (n, ne - ns, elem_bytes / n, sub_bytes - elem_bytes))
    print()
    ratio = (legacy_elems / n_legacy) / (elem_bytes / n)
    print("segments per request: %s" % segs)
    print("ratio legacy/new per request: %.0fx (target >= 500x)" % ratio)
    return 0 if n == n_legacy and ratio >= 500 else 1


if __name__ == "__main__":
    sys.exit(main())

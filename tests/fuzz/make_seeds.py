#!/usr/bin/env python3
"""Write the seed corpora of tests/fuzz/ from real migration streams.

vhost_inflight_check: vlmtest.save_region_stream() migrates a guest whose
writes wait in contrib/vhost-user-blk --latency to a file, with
inflight-migration=on (the stream of tests/test_inflight_region.py); the
"vhost-user-blk/inflight" region in it is the back-end's real region.  Each seed is that region
with the ring state that goes with it (the region's used index, and as
many requests available beyond it as the region has in flight), in the
input format of tests/fuzz/vhost_inflight_check.c: for one queue, for two
queues (the queue region twice), and with no region at all.

Run it after a change to a format; the seeds are committed.
"""

import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import vlmtest as vt  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def real_region():
    d = vt.short_dir()
    try:
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        s = vt.save_region_stream(img, os.path.join(d, "region.mig"))
        return s.data[s.region:s.end], s.queue_size, len(s.inflight)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def inflight_seed(region, qs, nrings, in_flight):
    # The split queue header: u64 features, u16 version, desc_num,
    # last_batch_head, used_idx
    used = struct.unpack_from("<H", region, 14)[0]
    ring = struct.pack("<HHH", qs, (used + in_flight) & 0xffff, used)
    return struct.pack("<BH", (nrings - 1) << 1, qs) + ring * nrings + region * nrings


def packed_seed(qs, in_flight):
    """A packed queue region of qs entries whose first in_flight entries
    are requests of one descriptor each, the others the free list, and the
    ring state that goes with it (wrap counters set)."""
    used = 0x8000
    # 29 bytes of fields, padded to 32 by the descriptors' alignment
    hdr = struct.pack("<QHHHHHHBB10x", 0, 1, qs, in_flight, in_flight, 0, 0, 1, 1)
    descs = b""
    for i in range(qs):
        if i < in_flight:
            # inflight, next, last, num, counter, id, flags, len, addr
            descs += struct.pack("<BxHHHQHHIQ", 1, i, i, 1, i + 1, i, 0, 0, 0)
        else:
            descs += struct.pack("<BxHHHQHHIQ", 0, i + 1, 0, 0, 0, 0, 0, 0, 0)
    ring = struct.pack("<HHH", qs, used + in_flight, used)
    return struct.pack("<BH", 1, qs) + ring + hdr + descs


def packed_seeds():
    return {"packed-idle": packed_seed(8, 0),
            "packed-2-in-flight": packed_seed(8, 2)}


def main():
    seeds = packed_seeds()
    if "--packed-only" not in sys.argv:
        region, qs, n = real_region()
        seeds.update({
            "split-1q-%d-in-flight" % n: inflight_seed(region, qs, 1, n),
            "split-2q-%d-in-flight" % (2 * n): inflight_seed(region, qs, 2, n),
            "no-region": struct.pack("<BHHHH", 0, qs, qs, 7, 7),
        })
        seeds_vu = vu_seeds(region, qs)
    else:
        seeds_vu = {}
    write("vhost_inflight_check", seeds)
    write("vu_inflight_region", seeds_vu)
    return 0


def vu_seeds(region, qs):
    """vu_inflight_region: the real region handed back to a back-end with
    SET_INFLIGHT_FD, as QEMU does at a reconnect or after a migration: one
    device queue, the ring of the region's size and used index; and the
    same region for a device of two queues that uses one."""
    used = struct.unpack_from("<H", region, 14)[0]
    msg = struct.pack("<IHHH", len(region), 0, 1, qs)
    return {
        "one-queue": struct.pack("<B", 0) + msg + struct.pack("<HH", qs, used) + region,
        "two-queues-one-used": struct.pack("<B", 1) + msg +
        struct.pack("<HHHH", qs, used, 0, 0) + region,
    }


def write(target, seeds):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        print("make_seeds.py: %s/%s, %d bytes" % (d, name, len(data)))


if __name__ == "__main__":
    sys.exit(main())

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

virtio_inflight_load: vlmtest.save_held_stream() migrates a guest whose
virtio-blk writes fail with werror=stop, with inflight-vmstate=on (the
stream of tests/test_inflight_stream.py); its "virtio/inflight"
subsection, with the ring state that goes with it, is a seed, for one
queue and for two.  A "virtio/suspend" subsection is built from its
layout: no test saves a stream from a guest that suspends a device.

vu_messages: the messages QEMU sends a libvhost-user back-end, in its
order (docs/interop/vhost-user.rst): negotiation, the inflight region
asked for and handed back, a queue set up and stopped without a drain,
and then the back-end state saved or loaded, through the front-end's pipe
or the library's own.  They are written from that order: no test records
the messages on a socket.

Run it after a change to a format; the seeds are committed.  With
--synthetic-only, only the seeds that need no guest are written.
"""

import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import vlmtest as vt  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def held_elements():
    """The "virtio/inflight" subsection of a real stream, and how many
    elements it has (all on queue 0)."""
    d = vt.short_dir()
    try:
        img = os.path.join(d, "disk.img")
        vt.create_image(img)
        s = vt.InflightStream(vt.save_held_stream(img, os.path.join(d, "held.mig")))
        assert s.nvqs == 1, vars(s)
        return s.data[s.sub:s.end], len(s.elems)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# virtio_inflight_load: the device's queues and flags, its status, each
# queue's ring (size, last_avail_idx, used_idx)
STATUS_RUNNING = 0x0f       # ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK
STATUS_SUSPENDED = 0x1b     # SUSPEND, and DRIVER_OK clear
SUSPEND_SUB = b"\x05\x0evirtio/suspend" + struct.pack(">IB", 1, 0)


def virtio_header(nq, status, rings, suspend=False):
    return (struct.pack("<BB", (nq - 1) << 2 | suspend << 1, status) +
            b"".join(struct.pack("<HHH", *r) for r in rings))


def suspended_idle():
    """A suspended device with nothing in flight."""
    return {"suspended-idle": virtio_header(1, STATUS_SUSPENDED, [(256, 0, 0)], True) +
            SUSPEND_SUB}


def virtio_seeds(sub, n):
    """The real subsection for one queue, and its queue list twice for two
    queues; a suspended device with those held."""
    name_end = 2 + len(vt.INFLIGHT_SUB) + 4
    one_queue = sub[name_end + 2:]
    two = sub[:name_end] + struct.pack(">H", 2) + one_queue * 2
    ring = (256, n, 0)
    return {
        "blk-1q-%d-held" % n: virtio_header(1, STATUS_RUNNING, [ring]) + sub,
        "blk-2q-%d-held" % (2 * n): virtio_header(2, STATUS_RUNNING, [ring] * 2) + two,
        "suspended-%d-held" % n: virtio_header(1, STATUS_SUSPENDED, [ring], True) +
        sub + SUSPEND_SUB,
    }


# vu_messages: the harness's REQUESTS, its pipe operations, and the bits
# of the protocol features the series negotiates
VU_REQ = {name: i for i, name in enumerate([
    "GET_FEATURES", "SET_FEATURES", "GET_PROTOCOL_FEATURES",
    "SET_PROTOCOL_FEATURES", "SET_VRING_NUM", "SET_VRING_BASE",
    "SET_VRING_ADDR", "GET_VRING_BASE", "GET_VRING_BASE_SKIP_DRAIN",
    "SET_VRING_KICK", "SET_VRING_CALL", "SET_VRING_ERR", "SET_VRING_ENABLE",
    "GET_INFLIGHT_FD", "SET_INFLIGHT_FD", "SET_DEVICE_STATE_FD",
    "CHECK_DEVICE_STATE"])}
OP_PIPE_WRITE, OP_PIPE_READ, OP_PIPE_CLOSE, OP_WATCHES = 0xf0, 0xf1, 0xf2, 0xf3
VU_PROTOCOL = (1 << 12) | (1 << 19) | (1 << 20) | (1 << 23)
VU_FEATURES = (1 << 32) | (1 << 30)
INFLIGHT_QUEUE_SIZE = 128


def vu_msg(name, payload=b"", flags=0):
    return struct.pack("<BB", VU_REQ[name], flags) + payload.ljust(24, b"\0")


def vu_started_and_stopped(nq):
    """Negotiation, the region asked for and handed back, each queue set up
    and stopped with GET_VRING_BASE_SKIP_DRAIN."""
    qs = INFLIGHT_QUEUE_SIZE
    # libvhost-user's queue region: 16 bytes per descriptor and the used
    # index, in units of 64 bytes
    region = nq * ((16 * qs + 2 + 63) // 64 * 64)
    seq = (vu_msg("GET_FEATURES") + vu_msg("GET_PROTOCOL_FEATURES") +
           vu_msg("SET_PROTOCOL_FEATURES", struct.pack("<Q", VU_PROTOCOL)) +
           vu_msg("SET_FEATURES", struct.pack("<Q", VU_FEATURES)) +
           vu_msg("GET_INFLIGHT_FD", struct.pack("<QQHH", 0, 0, nq, qs)) +
           vu_msg("SET_INFLIGHT_FD", struct.pack("<QQHH", region, 0, nq, qs), 8))
    for q in range(nq):
        seq += (vu_msg("SET_VRING_NUM", struct.pack("<II", q, qs)) +
                vu_msg("SET_VRING_BASE", struct.pack("<II", q, 0)) +
                vu_msg("SET_VRING_CALL", struct.pack("<Q", q)) +
                vu_msg("SET_VRING_ENABLE", struct.pack("<II", q, 1)))
    for q in range(nq):
        seq += vu_msg("GET_VRING_BASE_SKIP_DRAIN", struct.pack("<II", q, 0))
    return seq


def vu_message_seeds():
    save = (vu_msg("SET_DEVICE_STATE_FD", struct.pack("<II", 0, 0)) +
            bytes([OP_WATCHES, OP_PIPE_READ]) * 4 + vu_msg("CHECK_DEVICE_STATE"))
    chunk = bytes(range(256)) * 4
    load = (vu_msg("SET_DEVICE_STATE_FD", struct.pack("<II", 1, 0)) +
            (struct.pack("<BH", OP_PIPE_WRITE, len(chunk)) + chunk +
             bytes([OP_WATCHES])) * 2 +
            bytes([OP_PIPE_CLOSE, OP_WATCHES]) + vu_msg("CHECK_DEVICE_STATE"))
    # the device's queues - 1, the library's own pipe; the state's size
    return {
        "save-1q": struct.pack("<BH", 0, 1000) + vu_started_and_stopped(1) + save,
        "save-2q-own-pipe": struct.pack("<BH", 1 | 4, 1000) +
        vu_started_and_stopped(2) + save,
        "load-1q": struct.pack("<BH", 0, 0) + vu_started_and_stopped(1) + load,
        "load-2q-own-pipe": struct.pack("<BH", 1 | 4, 0) +
        vu_started_and_stopped(2) + load,
        "save-empty": struct.pack("<BH", 0, 0) + vu_started_and_stopped(1) + save,
    }


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
    seeds_vu = {}
    seeds_virtio = suspended_idle()
    if "--synthetic-only" not in sys.argv:
        region, qs, n = real_region()
        seeds.update({
            "split-1q-%d-in-flight" % n: inflight_seed(region, qs, 1, n),
            "split-2q-%d-in-flight" % (2 * n): inflight_seed(region, qs, 2, n),
            "no-region": struct.pack("<BHHHH", 0, qs, qs, 7, 7),
        })
        seeds_vu = vu_seeds(region, qs)
        seeds_virtio.update(virtio_seeds(*held_elements()))
    write("vhost_inflight_check", seeds)
    write("vu_inflight_region", seeds_vu)
    write("virtio_inflight_load", seeds_virtio)
    write("vu_messages", vu_message_seeds())
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

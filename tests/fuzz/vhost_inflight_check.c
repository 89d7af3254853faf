/*
 * libFuzzer target: vhost_inflight_check() (hw/virtio/vhost-inflight.c) on
 * a hostile inflight region and ring state, as a migration stream or a
 * vhost-user back-end could hand them to QEMU.
 *
 * Input: a header, then the region's bytes.
 *   u8  flags: bit 0 packed layout, bits 1-2 number of rings - 1
 *   u16 queue size the region claims (little endian)
 *   per ring: u16 num, u16 last_avail_idx, u16 used_idx (little endian)
 *   the rest: the region; its size is what is left
 *
 * Besides what AddressSanitizer catches, a region that passes must account
 * for exactly the requests the rings have in flight (split layout), and
 * never for more than the rings hold (both layouts): a back-end resubmits
 * what a region that passed records.
 *
 * Copyright (c) 2026 virtio-lm developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/bswap.h"
#include "hw/virtio/vhost-inflight.h"

#define MAX_RINGS 4
#define RING_BYTES 6

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VhostInflightRing rings[MAX_RINGS];
    struct vhost_inflight inflight = { .fd = -1 };
    unsigned nrings, q, in_flight = 0, inuse = 0, slots = 0;
    g_autofree void *region = NULL;
    Error *err = NULL;
    size_t hdr;
    bool packed;

    if (size < 3) {
        return 0;
    }
    packed = data[0] & 1;
    nrings = ((data[0] >> 1) & 3) + 1;
    hdr = 3 + nrings * RING_BYTES;
    if (size < hdr) {
        return 0;
    }
    inflight.queue_size = lduw_le_p(data + 1);
    for (q = 0; q < nrings; q++) {
        const uint8_t *p = data + 3 + q * RING_BYTES;

        rings[q].num = lduw_le_p(p);
        rings[q].last_avail_idx = lduw_le_p(p + 2);
        rings[q].used_idx = lduw_le_p(p + 4);
    }
    inflight.size = size - hdr;
    if (inflight.size) {
        /* Exactly the region's bytes, so that a read past it is caught */
        region = g_memdup2(data + hdr, inflight.size);
        inflight.addr = region;
    }

    if (!vhost_inflight_check(&inflight, packed, rings, nrings, "fuzz",
                              &in_flight, &err)) {
        assert(err);
        error_free(err);
        return 0;
    }
    assert(!err);
    for (q = 0; q < nrings; q++) {
        if (rings[q].num) {
            inuse += (uint16_t)(rings[q].last_avail_idx - rings[q].used_idx);
            slots += rings[q].num;
        }
    }
    if (in_flight > slots || (!packed && in_flight != inuse)) {
        fprintf(stderr, "a region that passed has %u requests in flight; "
                "the rings have %u in use in %u slots\n", in_flight, inuse,
                slots);
        abort();
    }
    return 0;
}

/*
 * libFuzzer target: libvhost-user's handling of an inflight region that
 * the front-end hands in with VHOST_USER_SET_INFLIGHT_FD, and the check
 * that resubmits what it records when a queue starts
 * (vu_check_queue_inflights(), on SET_VRING_KICK).  A back-end must not
 * trust its front-end: the region's fd, its size and offset, the queue
 * count and size, and every byte of the region come from the input.
 *
 * Input, little endian:
 *   u8  the device's queues - 1 (bits 0-1)
 *   u32 mmap_size, u16 mmap_offset in pages, u16 num_queues, u16 queue_size
 *   per device queue: u16 ring size (vring.num), u16 used ring index
 *   the rest: the contents of the region's memfd (its size is what is left)
 *
 * Besides what AddressSanitizer catches (and a SIGBUS past the end of the
 * memfd), a queue that starts must resubmit exactly the requests it counts
 * in flight, each a head within its ring, and must have checked the last
 * batch's head whose entry its recovery writes (a write past the region
 * lands in memory that AddressSanitizer does not watch).
 *
 * The harness includes libvhost-user.c to reach its static handlers.
 *
 * Copyright (c) 2026 virtio-lm developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "libvhost-user.c"

#define MAX_QUEUES 4
#define HDR (1 + 4 + 2 + 2 + 2)
#define RING_BYTES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint16_t get16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static void fuzz_panic(VuDev *dev, const char *err)
{
    /* The library marks the device broken; the harness stops there */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VuDevIface iface = { 0 };
    VuDev dev = { 0 };
    VhostUserMsg msg = { 0 };
    struct vring_used *used[MAX_QUEUES] = { 0 };
    unsigned nq, q, i;
    size_t hdr;
    int fd;

    if (size < HDR) {
        return 0;
    }
    nq = (data[0] & 3) + 1;
    hdr = HDR + nq * RING_BYTES;
    if (size < hdr) {
        return 0;
    }

    fd = memfd_create("fuzz-inflight", MFD_CLOEXEC);
    assert(fd >= 0);
    if (size > hdr) {
        assert(write(fd, data + hdr, size - hdr) == (ssize_t)(size - hdr));
    }

    dev.max_queues = nq;
    dev.vq = calloc(nq, sizeof(dev.vq[0]));
    dev.iface = &iface;
    dev.panic = fuzz_panic;
    dev.protocol_features = 1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD;
    for (q = 0; q < nq; q++) {
        const uint8_t *p = data + HDR + q * RING_BYTES;

        used[q] = calloc(1, sizeof(*used[q]));
        used[q]->idx = htole16(get16(p + 2));
        dev.vq[q].vring.num = get16(p);
        dev.vq[q].vring.used = used[q];
        dev.vq[q].kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        dev.vq[q].call_fd = -1;
        dev.vq[q].err_fd = -1;
    }

    msg.request = VHOST_USER_SET_INFLIGHT_FD;
    msg.size = sizeof(msg.payload.inflight);
    msg.fd_num = 1;
    msg.fds[0] = fd;
    msg.payload.inflight.mmap_size = data[1] | data[2] << 8 | data[3] << 16 |
                                     (uint32_t)data[4] << 24;
    msg.payload.inflight.mmap_offset = (uint64_t)get16(data + 5) * 4096;
    msg.payload.inflight.num_queues = get16(data + 7);
    msg.payload.inflight.queue_size = get16(data + 9);
    vu_set_inflight_fd(&dev, &msg);

    for (q = 0; q < nq && !dev.broken; q++) {
        VuVirtq *vq = &dev.vq[q];
        bool was_used = vq->inflight && vq->inflight->version;

        if (vu_check_queue_inflights(&dev, vq) || !was_used) {
            continue;
        }
        if (vq->inflight->last_batch_head >= vq->inflight->desc_num) {
            /* the recovery clears the entry of the last batch's head */
            fprintf(stderr, "queue %u: last batch head %u accepted in a "
                    "region of %u\n", q, vq->inflight->last_batch_head,
                    vq->inflight->desc_num);
            abort();
        }
        if (vq->resubmit_num != vq->inuse) {
            fprintf(stderr, "queue %u: %u requests in flight, %u resubmitted\n",
                    q, vq->inuse, vq->resubmit_num);
            abort();
        }
        for (i = 0; i < vq->resubmit_num; i++) {
            if (vq->resubmit_list[i].index >= vq->vring.num) {
                fprintf(stderr, "queue %u: head %u resubmitted on a ring of "
                        "%u\n", q, vq->resubmit_list[i].index, vq->vring.num);
                abort();
            }
        }
    }

    for (q = 0; q < nq; q++) {
        free(dev.vq[q].resubmit_list);
        free(used[q]);
        if (dev.vq[q].kick_fd >= 0) {
            close(dev.vq[q].kick_fd);
        }
    }
    /* The library owns the fd: kept with the region, or closed on error */
    if (dev.inflight_info.addr) {
        munmap(dev.inflight_info.addr, dev.inflight_info.size);
    }
    if (dev.inflight_info.fd > 0) {
        close(dev.inflight_info.fd);
    }
    free(dev.vq);
    return 0;
}

/*
 * libFuzzer target: the virtio core's loaders of the "virtio/inflight" and
 * "virtio/suspend" subsections, and the checks virtio_load() makes of what
 * they brought once the rings are set up (virtio_inflight_validate(),
 * virtio_suspend_validate()).  The subsections are loaded as virtio_load()
 * loads them, through the VMState core, from the bytes of a migration
 * stream.
 *
 * Input:
 *   u8  bit 0: VIRTIO_F_RING_PACKED, bit 1: VIRTIO_F_SUSPEND negotiated,
 *       bits 2-4: the device's queues - 1
 *   u8  the device status
 *   per queue, little endian: u16 ring size (0: not in use),
 *       u16 last_avail_idx, u16 used_idx
 *   the rest: the stream from the first subsection on, as it follows the
 *   device's fields ("virtio/inflight" and "virtio/suspend" are known);
 *   the harness adds the section footer that ends it
 *
 * Guest memory is [0, GUEST_RAM): what virtqueue_seg_valid() accepts.
 *
 * Besides what AddressSanitizer and LeakSanitizer catch (an element or a
 * segment array lost on a failed load), what passes both checks must be
 * something a device can take back: elements only for queues in use, at
 * most one per head, each head within its ring and each segment in guest
 * memory, as many elements on a split ring as its indices have in flight;
 * and a held configuration change only on a suspended device, which never
 * has DRIVER_OK.
 *
 * The harness includes virtio-inflight.c to see the loaded elements.
 *
 * Copyright (c) 2026 virtio-lm developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "virtio-inflight.c"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "io/channel-buffer.h"
#include "hw/virtio/virtio-bus.h"
#include "qemu/module.h"
#include "qemu/units.h"
#include "virtio-suspend.h"

#define MAX_QUEUES 8
#define RING_BYTES 6
#define GUEST_RAM (4 * GiB)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The guest memory the segments must lie in */
bool virtqueue_seg_valid(VirtIODevice *vdev, hwaddr addr, hwaddr len,
                         bool is_write)
{
    return len && addr < GUEST_RAM && len <= GUEST_RAM - addr;
}

/*
 * Reached only when a device takes the elements back, or from the status
 * writes of virtio-suspend.c: not from a load.
 */
#define NOT_REACHED(ret, name, ...) \
    ret name(__VA_ARGS__) { abort(); }
NOT_REACHED(void *, virtqueue_alloc_element, size_t sz, unsigned o, unsigned i)
NOT_REACHED(void, virtqueue_map, VirtIODevice *vdev, VirtQueueElement *elem)
NOT_REACHED(BusState *, qdev_get_parent_bus, const DeviceState *dev)
NOT_REACHED(int, virtio_bus_start_ioeventfd, VirtioBusState *bus)
NOT_REACHED(void, virtio_bus_stop_ioeventfd, VirtioBusState *bus)
NOT_REACHED(void, virtio_error, VirtIODevice *vdev, const char *fmt, ...)
NOT_REACHED(void, virtio_notify_config, VirtIODevice *vdev)
NOT_REACHED(void, virtio_queue_notify, VirtIODevice *vdev, int n)
NOT_REACHED(void, virtio_queue_set_notification, VirtQueue *vq, int enable)

/* The loaders' error reports, on every rejected input: not printed */
int error_vprintf(const char *fmt, va_list ap)
{
    return 0;
}

static const VMStateDescription vmstate_fuzz_virtio = {
    .name = "virtio",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription * const []) {
        &vmstate_virtio_inflight,
        &vmstate_virtio_suspend,
        NULL
    }
};

static uint16_t get16(const uint8_t *p)
{
    return p[0] | p[1] << 8;
}

static void fail(const char *what, unsigned q, unsigned v)
{
    fprintf(stderr, "accepted: %s (queue %u, %u)\n", what, q, v);
    abort();
}

static void check_accepted(VirtIODevice *vdev, unsigned nq, bool packed)
{
    unsigned q;

    for (q = 0; q < VIRTIO_QUEUE_MAX; q++) {
        VirtQueue *vq = &vdev->vq[q];
        g_autofree unsigned long *seen = NULL;
        VirtQueueInflight *e;
        unsigned count = 0, j;

        if (QTAILQ_EMPTY(&vq->inflight)) {
            if (vdev->inflight_loaded && !packed && q < nq && vq->inuse) {
                fail("requests in flight without their elements", q,
                     vq->inuse);
            }
            continue;
        }
        if (q >= nq || !vq->vring.num) {
            fail("elements for a queue not in use", q, 0);
        }
        seen = bitmap_new(vq->vring.num);
        QTAILQ_FOREACH(e, &vq->inflight, next) {
            count++;
            if (e->head >= vq->vring.num || test_and_set_bit(e->head, seen)) {
                fail("a head out of range or twice", q, e->head);
            }
            if (!e->nsegs || e->nsegs > VIRTQUEUE_MAX_SIZE ||
                e->out_num > e->nsegs) {
                fail("an element's segment counts", q, e->nsegs);
            }
            if (packed && (!e->ndescs || e->ndescs > vq->vring.num)) {
                fail("a packed element's descriptor count", q, e->ndescs);
            }
            for (j = 0; j < e->nsegs; j++) {
                if (!e->segs[j].len || e->segs[j].addr >= GUEST_RAM ||
                    e->segs[j].len > GUEST_RAM - e->segs[j].addr) {
                    fail("a segment outside guest memory", q, j);
                }
            }
        }
        if (!packed && count != vq->inuse) {
            fail("a count of elements that is not the ring's", q, count);
        }
    }
}

static VirtQueue vqs[VIRTIO_QUEUE_MAX];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* The stream's buffer channel is a QOM type */
    module_call_init(MODULE_INIT_QOM);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VirtIODevice vdev = { .name = "fuzz" };
    QIOChannelBuffer *bioc;
    QEMUFile *f;
    Error *err = NULL;
    unsigned nq, q;
    bool packed, ok;
    size_t hdr;

    if (size < 2) {
        return 0;
    }
    nq = ((data[0] >> 2) & 7) + 1;
    hdr = 2 + nq * RING_BYTES;
    if (size < hdr) {
        return 0;
    }
    packed = data[0] & 1;
    if (packed) {
        virtio_add_feature(&vdev.guest_features, VIRTIO_F_RING_PACKED);
    }
    if (data[0] & 2) {
        virtio_add_feature(&vdev.guest_features, VIRTIO_F_SUSPEND);
    }
    vdev.status = data[1];
    /* A global has redzones too, and is cheaper to clear than to allocate */
    memset(vqs, 0, sizeof(vqs));
    vdev.vq = vqs;
    for (q = 0; q < VIRTIO_QUEUE_MAX; q++) {
        QTAILQ_INIT(&vdev.vq[q].inflight);
    }
    for (q = 0; q < nq; q++) {
        const uint8_t *p = data + 2 + q * RING_BYTES;
        VirtQueue *vq = &vdev.vq[q];

        vq->vring.num = get16(p);
        vq->vring.desc = vq->vring.num ? 0x1000 : 0;
        vq->last_avail_idx = get16(p + 2);
        vq->used_idx = get16(p + 4);
        /* virtio_load_rings() refuses more than a ring in flight */
        vq->inuse = packed ? 0 : (uint16_t)(vq->last_avail_idx - vq->used_idx);
        if (vq->inuse > vq->vring.num) {
            goto out;
        }
    }

    /*
     * Each level of the loader peeks at the byte after its fields for a
     * subsection; the device's section footer follows in a real stream.
     */
    bioc = qio_channel_buffer_new(size - hdr + 1);
    memcpy(bioc->data, data + hdr, size - hdr);
    bioc->data[size - hdr] = QEMU_VM_SECTION_FOOTER;
    bioc->usage = size - hdr + 1;
    f = qemu_file_new_input(QIO_CHANNEL(bioc));
    object_unref(OBJECT(bioc));
    ok = !vmstate_load_state(f, &vmstate_fuzz_virtio, &vdev, 1, &err);
    qemu_fclose(f);
    if (ok) {
        ok = virtio_suspend_validate(&vdev, &err) &&
             virtio_inflight_validate(&vdev, nq, &err);
    }
    if (ok) {
        check_accepted(&vdev, nq, packed);
        if (virtio_device_suspended(&vdev) &&
            (vdev.status & VIRTIO_CONFIG_S_DRIVER_OK)) {
            fail("a suspended device with DRIVER_OK", 0, vdev.status);
        }
        if (vdev.suspend_config_changed && !virtio_device_suspended(&vdev)) {
            fail("a held configuration change, not suspended", 0,
                 vdev.status);
        }
    }
    error_free(err);
out:
    /* As the next load or the device's unrealize would */
    virtio_inflight_free(&vdev);
    return 0;
}

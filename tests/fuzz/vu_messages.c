/*
 * libFuzzer target: libvhost-user as a hostile front-end drives it, through
 * vu_dispatch() and a real socket: the vring messages (GET_VRING_BASE and
 * GET_VRING_BASE_SKIP_DRAIN among them), the inflight region
 * (GET/SET_INFLIGHT_FD), and the back-end state transfer
 * (SET_DEVICE_STATE_FD, the pipe, CHECK_DEVICE_STATE).  A back-end must
 * not trust its front-end.
 *
 * Input:
 *   u8  bits 0-1: the device's queues - 1; bit 2: the library's own pipe;
 *       bit 3: save_device_state() refuses; bit 4: load_device_state()
 *       fails; bit 5: check_device_state() fails
 *   u16 the size of the state the device saves, in units of 61 bytes
 *   then steps, each a u8 opcode and its operands:
 *   - a message (see REQUESTS): u8 flags (bit 0: a payload size that is
 *     not the request's, bit 1: no fd where one goes, bit 2: NEED_REPLY,
 *     bit 3: SET_INFLIGHT_FD hands back the region GET_INFLIGHT_FD gave),
 *     24 bytes of payload
 *   - OP_PIPE_WRITE: u16 n, then n bytes for the state pipe
 *   - OP_PIPE_READ: read the state pipe until it would block
 *   - OP_PIPE_CLOSE: close the front-end's end of the state pipe
 *   - OP_WATCHES: run the watches whose fds are ready, as a main loop does
 *   Missing bytes read as zero.
 *
 * Before CHECK_DEVICE_STATE, the front-end reads what a save put in the
 * pipe, and closes its end of a load's pipe, as the protocol asks (the
 * library then reads up to the end of file).
 *
 * Besides what AddressSanitizer and LeakSanitizer catch, the checks are:
 * - the back-end's file descriptors are all closed once it is torn down;
 * - a saved state arrives in order, and whole if CHECK_DEVICE_STATE
 *   says the transfer succeeded;
 * - a state is loaded only by CHECK_DEVICE_STATE, once, with exactly the
 *   bytes the front-end wrote, and CHECK_DEVICE_STATE succeeds only if
 *   the device applied it.
 *
 * The harness includes libvhost-user.c to run it with its own callbacks.
 *
 * Copyright (c) 2026 virtio-lm developers
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "libvhost-user.c"
#include <dirent.h>
#include <signal.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_WATCHES 16
#define PAYLOAD 24
#define STATE_UNIT 61
#define MAX_WRITTEN (1 << 22)
#define MAX_INFLIGHT_MEMFD ((uint64_t)1 << 20)

enum { OP_PIPE_WRITE = 0xf0, OP_PIPE_READ, OP_PIPE_CLOSE, OP_WATCHES };

static const struct {
    int request;
    uint32_t size;
    bool fd;
} REQUESTS[] = {
    { VHOST_USER_GET_FEATURES, 0 },
    { VHOST_USER_SET_FEATURES, sizeof(uint64_t) },
    { VHOST_USER_GET_PROTOCOL_FEATURES, 0 },
    { VHOST_USER_SET_PROTOCOL_FEATURES, sizeof(uint64_t) },
    { VHOST_USER_SET_VRING_NUM, sizeof(struct vhost_vring_state) },
    { VHOST_USER_SET_VRING_BASE, sizeof(struct vhost_vring_state) },
    { VHOST_USER_SET_VRING_ADDR, sizeof(struct vhost_vring_addr) },
    { VHOST_USER_GET_VRING_BASE, sizeof(struct vhost_vring_state) },
    { VHOST_USER_GET_VRING_BASE_SKIP_DRAIN,
      sizeof(struct vhost_vring_state) },
    { VHOST_USER_SET_VRING_KICK, sizeof(uint64_t), true },
    { VHOST_USER_SET_VRING_CALL, sizeof(uint64_t), true },
    { VHOST_USER_SET_VRING_ERR, sizeof(uint64_t), true },
    { VHOST_USER_SET_VRING_ENABLE, sizeof(struct vhost_vring_state) },
    { VHOST_USER_GET_INFLIGHT_FD, sizeof(VhostUserInflight) },
    { VHOST_USER_SET_INFLIGHT_FD, sizeof(VhostUserInflight), true },
    { VHOST_USER_SET_DEVICE_STATE_FD,
      sizeof(VhostUserTransferDeviceState), true },
    { VHOST_USER_CHECK_DEVICE_STATE, 0 },
};

typedef struct Fuzz {
    const uint8_t *p, *end;
    VhostUserMsg next;
    int sock;                   /* the front-end's end */
    struct {
        int fd;
        vu_watch_cb cb;
        int condition;
    } watch[MAX_WATCHES];
    int inflight_fd;            /* what GET_INFLIGHT_FD gave */
    /* The state transfer, from the front-end's side */
    int pipe_fd;
    uint32_t direction;
    size_t state_len;           /* what the device saves */
    bool save_fails, load_fails, check_fails;
    size_t got;                 /* saved bytes read so far */
    bool eof;
    uint8_t *written;           /* bytes written for a load */
    size_t nwritten;
    int loads;                  /* load_device_state() calls */
    bool loaded_ok;
} Fuzz;

static Fuzz fz;

static uint8_t state_byte(size_t i)
{
    return i * 31 + (i >> 8) + 7;
}

static uint8_t get8(void)
{
    return fz.p < fz.end ? *fz.p++ : 0;
}

static uint16_t get16(void)
{
    uint16_t lo = get8();

    return lo | get8() << 8;
}

static void fuzz_panic(VuDev *dev, const char *err)
{
    /* The library marks the device broken; the front-end is then gone */
}

static void set_watch(VuDev *dev, int fd, int condition, vu_watch_cb cb,
                      void *data)
{
    int i, free_slot = -1;

    for (i = 0; i < MAX_WATCHES; i++) {
        if (fz.watch[i].fd == fd || (free_slot < 0 && fz.watch[i].fd < 0)) {
            free_slot = i;
            if (fz.watch[i].fd == fd) {
                break;
            }
        }
    }
    assert(free_slot >= 0);
    fz.watch[free_slot].fd = fd;
    fz.watch[free_slot].cb = cb;
    fz.watch[free_slot].condition = condition;
}

static void remove_watch(VuDev *dev, int fd)
{
    int i;

    for (i = 0; i < MAX_WATCHES; i++) {
        if (fz.watch[i].fd == fd) {
            fz.watch[i].fd = -1;
        }
    }
}

static void run_watches(VuDev *dev)
{
    int i;

    for (i = 0; i < MAX_WATCHES && !dev->broken; i++) {
        struct pollfd pfd = { .fd = fz.watch[i].fd };

        if (pfd.fd < 0) {
            continue;
        }
        pfd.events = (fz.watch[i].condition & VU_WATCH_IN ? POLLIN : 0) |
                     (fz.watch[i].condition & VU_WATCH_OUT ? POLLOUT : 0);
        if (poll(&pfd, 1, 0) == 1) {
            fz.watch[i].cb(dev, fz.watch[i].condition, NULL);
        }
    }
}

static uint64_t get_features(VuDev *dev)
{
    return 1ULL << VIRTIO_F_VERSION_1 |
           1ULL << VHOST_USER_F_PROTOCOL_FEATURES;
}

static uint64_t get_protocol_features(VuDev *dev)
{
    return 1ULL << VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD |
           1ULL << VHOST_USER_PROTOCOL_F_GET_VRING_BASE_INFLIGHT |
           1ULL << VHOST_USER_PROTOCOL_F_GET_VRING_BASE_SKIP_DRAIN;
}

static void queue_set_started(VuDev *dev, int qidx, bool started)
{
    assert(qidx >= 0 && qidx < dev->max_queues);
}

static int save_device_state(VuDev *dev, uint8_t **data, size_t *len)
{
    size_t i;

    if (fz.save_fails) {
        return -EIO;
    }
    *data = malloc(fz.state_len ?: 1);
    for (i = 0; i < fz.state_len; i++) {
        (*data)[i] = state_byte(i);
    }
    *len = fz.state_len;
    return 0;
}

static void free_device_state(VuDev *dev, uint8_t *data)
{
    free(data);
}

static int load_device_state(VuDev *dev, uint8_t *data, size_t len)
{
    fz.loads++;
    if (len != fz.nwritten || (len && memcmp(data, fz.written, len))) {
        fprintf(stderr, "loaded %zu bytes, the front-end wrote %zu\n", len,
                fz.nwritten);
        abort();
    }
    vu_device_state_free(data, len);
    fz.loaded_ok = !fz.load_fails;
    return fz.load_fails ? -EINVAL : 0;
}

static int check_device_state(VuDev *dev)
{
    return fz.check_fails ? -EIO : 0;
}

static const VuDevIface iface = {
    .get_features = get_features,
    .get_protocol_features = get_protocol_features,
    .queue_set_started = queue_set_started,
    .save_device_state = save_device_state,
    .load_device_state = load_device_state,
    .check_device_state = check_device_state,
    .free_device_state = free_device_state,
};

static void close_pipe(void)
{
    if (fz.pipe_fd >= 0) {
        close(fz.pipe_fd);
        fz.pipe_fd = -1;
    }
}

static void pipe_read(void)
{
    uint8_t buf[65536];
    ssize_t n, i;

    if (fz.pipe_fd < 0 || fz.direction != VU_TRANSFER_STATE_DIRECTION_SAVE) {
        return;
    }
    while ((n = read(fz.pipe_fd, buf, sizeof(buf))) > 0) {
        for (i = 0; i < n; i++, fz.got++) {
            if (fz.got >= fz.state_len || buf[i] != state_byte(fz.got)) {
                fprintf(stderr, "saved state: byte %zu is wrong\n", fz.got);
                abort();
            }
        }
    }
    if (n == 0) {
        fz.eof = true;
    }
}

static void pipe_write(void)
{
    size_t n = get16(), avail = fz.end - fz.p;
    ssize_t w;

    n = MIN(n, avail);
    if (fz.pipe_fd >= 0 && fz.direction == VU_TRANSFER_STATE_DIRECTION_LOAD &&
        fz.nwritten + n <= MAX_WRITTEN) {
        w = write(fz.pipe_fd, fz.p, n);
        if (w > 0) {
            fz.written = realloc(fz.written, fz.nwritten + w);
            memcpy(fz.written + fz.nwritten, fz.p, w);
            fz.nwritten += w;
        }
    }
    fz.p += n;
}

/* The fd a message carries, made as a front-end would */
static int message_fd(int request, uint8_t flags, uint64_t arg)
{
    int fds[2], fd;

    switch (request) {
    case VHOST_USER_SET_DEVICE_STATE_FD:
        /* The front-end keeps the other end: the library's, if it has one */
        if (pipe2(fds, O_CLOEXEC | O_NONBLOCK)) {
            abort();
        }
        close_pipe();
        fz.direction = arg;
        fz.got = fz.nwritten = 0;
        fz.eof = false;
        fz.loads = 0;
        fz.loaded_ok = false;
        fz.pipe_fd = arg == VU_TRANSFER_STATE_DIRECTION_SAVE ? fds[0] : fds[1];
        return arg == VU_TRANSFER_STATE_DIRECTION_SAVE ? fds[1] : fds[0];
    case VHOST_USER_SET_INFLIGHT_FD:
        if (flags & 8 && fz.inflight_fd >= 0) {
            return dup(fz.inflight_fd);
        }
        fd = memfd_create("fuzz-inflight", MFD_CLOEXEC);
        if (fd < 0 || ftruncate(fd, MIN(arg, MAX_INFLIGHT_MEMFD))) {
            abort();
        }
        return fd;
    default:
        return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    }
}

static bool read_msg(VuDev *dev, int sock, VhostUserMsg *vmsg)
{
    *vmsg = fz.next;
    return true;
}

/* The reply, with the fds it carries, as the front-end receives it */
static void receive_reply(int request, uint64_t *u64)
{
    uint8_t buf[VHOST_USER_HDR_SIZE + sizeof(VhostUserMsg)];
    char control[CMSG_SPACE(VHOST_MEMORY_BASELINE_NREGIONS * sizeof(int))];
    struct iovec iov;
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct cmsghdr *cmsg;
    size_t len = 0;
    ssize_t n;

    /* The header and its fds come in one piece, the payload in another */
    do {
        iov.iov_base = buf + len;
        iov.iov_len = sizeof(buf) - len;
        msg.msg_control = control;
        msg.msg_controllen = sizeof(control);
        n = recvmsg(fz.sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n <= 0) {
            break;
        }
        len += n;
        for (cmsg = CMSG_FIRSTHDR(&msg); cmsg;
             cmsg = CMSG_NXTHDR(&msg, cmsg)) {
            int *fds = (int *)CMSG_DATA(cmsg);
            int i, nfds = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);

            for (i = 0; i < nfds; i++) {
                if (request == VHOST_USER_GET_INFLIGHT_FD) {
                    if (fz.inflight_fd >= 0) {
                        close(fz.inflight_fd);
                    }
                    fz.inflight_fd = fds[i];
                } else if (request == VHOST_USER_SET_DEVICE_STATE_FD &&
                           fz.pipe_fd >= 0) {
                    /* The back-end's own pipe replaces the front-end's */
                    close_pipe();
                    fz.pipe_fd = fds[i];
                    fcntl(fds[i], F_SETFL, O_NONBLOCK);
                } else {
                    close(fds[i]);
                }
            }
        }
    } while (len < sizeof(buf));
    if (len >= VHOST_USER_HDR_SIZE + sizeof(uint64_t)) {
        memcpy(u64, buf + VHOST_USER_HDR_SIZE, sizeof(*u64));
    }
}

static bool send_message(VuDev *dev, uint8_t op)
{
    int request = REQUESTS[op].request;
    uint8_t flags = get8();
    uint64_t arg, reply = ~0ULL;
    VhostUserMsg *m = &fz.next;
    bool ok;
    int i;

    memset(m, 0, sizeof(*m));
    m->request = request;
    m->flags = VHOST_USER_VERSION | (flags & 4 ? VHOST_USER_NEED_REPLY_MASK : 0);
    m->size = flags & 1 ? get8() : REQUESTS[op].size;
    for (i = 0; i < PAYLOAD; i++) {
        ((uint8_t *)&m->payload)[i] = get8();
    }
    if (REQUESTS[op].fd && !(flags & 2)) {
        arg = request == VHOST_USER_SET_INFLIGHT_FD ?
              m->payload.inflight.mmap_size :
              m->payload.transfer_state.direction;
        m->fds[0] = message_fd(request, flags, arg);
        m->fd_num = 1;
    }
    if (request == VHOST_USER_CHECK_DEVICE_STATE) {
        /* What a saving back-end wrote is read first, as QEMU reads to EOF */
        pipe_read();
        if (fz.direction == VU_TRANSFER_STATE_DIRECTION_LOAD) {
            close_pipe();
        }
    }

    ok = vu_dispatch(dev);
    receive_reply(request, &reply);

    if (request == VHOST_USER_CHECK_DEVICE_STATE && ok && reply == 0) {
        if (fz.direction == VU_TRANSFER_STATE_DIRECTION_SAVE &&
            fz.got != fz.state_len) {
            fprintf(stderr, "CHECK_DEVICE_STATE succeeded with %zu bytes of "
                    "%zu saved\n", fz.got, fz.state_len);
            abort();
        }
        if (fz.direction == VU_TRANSFER_STATE_DIRECTION_LOAD &&
            (fz.loads != 1 || !fz.loaded_ok)) {
            fprintf(stderr, "CHECK_DEVICE_STATE succeeded after %d loads\n",
                    fz.loads);
            abort();
        }
    }
    if (request == VHOST_USER_CHECK_DEVICE_STATE) {
        /* The next check is of a new transfer */
        fz.direction = ~0U;
    }
    if (fz.loads > 1) {
        fprintf(stderr, "a state loaded %d times\n", fz.loads);
        abort();
    }
    return ok;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    while (readdir(d)) {
        n++;
    }
    closedir(d);
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* A pipe whose reader is gone fails the write, as in QEMU and back-ends */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    VuDev dev;
    int sv[2], fds_before, i;
    uint8_t cfg;
    bool ok = true;

    memset(&fz, 0, sizeof(fz));
    for (i = 0; i < MAX_WATCHES; i++) {
        fz.watch[i].fd = -1;
    }
    fz.inflight_fd = fz.pipe_fd = -1;
    fz.direction = ~0U;
    fz.p = data;
    fz.end = data + size;
    cfg = get8();
    fz.state_len = (size_t)get16() * STATE_UNIT;
    fz.save_fails = cfg & 8;
    fz.load_fails = cfg & 16;
    fz.check_fails = cfg & 32;

    fds_before = count_fds();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        abort();
    }
    fz.sock = sv[0];
    if (!vu_init(&dev, (cfg & 3) + 1, sv[1], fuzz_panic, read_msg, set_watch,
                 remove_watch, &iface)) {
        abort();
    }
    vu_set_device_state_own_pipe(&dev, cfg & 4);

    while (ok && fz.p < fz.end && !dev.broken) {
        uint8_t op = get8();

        switch (op) {
        case OP_PIPE_WRITE:
            pipe_write();
            break;
        case OP_PIPE_READ:
            pipe_read();
            break;
        case OP_PIPE_CLOSE:
            close_pipe();
            break;
        case OP_WATCHES:
            run_watches(&dev);
            break;
        default:
            ok = send_message(&dev, op % (sizeof(REQUESTS) / sizeof(REQUESTS[0])));
        }
    }

    vu_deinit(&dev);
    close(fz.sock);
    close_pipe();
    if (fz.inflight_fd >= 0) {
        close(fz.inflight_fd);
    }
    free(fz.written);
    if (count_fds() != fds_before) {
        fprintf(stderr, "%d fds before, %d after\n", fds_before, count_fds());
        abort();
    }
    return 0;
}

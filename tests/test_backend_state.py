"""vhost-user back-end state (VHOST_USER_PROTOCOL_F_DEVICE_STATE) through
live migration: vhost-user-blk with backend-state, on contrib/vhost-user-blk
with --state-size (a pseudo-random state that libvhost-user transfers and
the back-end logs with its SHA-256) and --state-fault (the first transfer
fails the way a faulty back-end would).

The VMs run only their firmware: what matters is the back-end state, not
guest I/O."""

import os
import re
import struct
import time

import pytest

import vlmtest as vt

# The asan suite runs the whole module again on the ASan builds.
pytestmark = pytest.mark.asan

KiB = 1024
MiB = 1024 * KiB
SUBSECTION = b"vhost-user-blk/backend-state"


def states(backend):
    """[(what, size, sha256)] from the back-end's log"""
    return [(w, int(n), h) for w, n, h in
            re.findall(r"state (\w+): (\d+) bytes, sha256 (\w+)", backend.log())]


class Setup(vt.Setup):
    """Source and destination VMs, each with vhost-user-blk devices on their
    own contrib back-ends; the destination's back-ends start with an empty
    state of another seed, so only a transfer gives them the source's."""

    def __init__(self, wd, sizes=(64 * KiB,), props="backend-state=on",
                 src_fault=None, dst_fault=None, dst_props=None,
                 dst_binary=vt.QEMU, start_dst=True, timeout_ms=3000,
                 src_extra=(), dst_extra=()):
        super().__init__(wd, "16M")
        self.sizes = sizes
        self.props = props
        self.timeout_ms = timeout_ms
        self.dst_extra = dst_extra
        self.src_be = [self.backend("src%d" % i, size, 1000 + i, src_fault,
                                    src_extra)
                       for i, size in enumerate(sizes)]
        self.src = self.guest("src", self.devices(self.src_be, props), mem="128M",
                              kernel=False)
        self.dst = None
        if start_dst:
            self.start_destination(dst_fault, props if dst_props is None else dst_props,
                                   dst_binary)

    def backend(self, name, size, seed, fault=None, more=()):
        extra = list(more)
        if size is not None:
            extra += ["--state-size", str(size), "--state-seed", str(seed)]
        if fault:
            extra += ["--state-fault", fault]
        return self.contrib_blk(name, extra=extra)

    def devices(self, backends, props):
        devs = []
        for i, be in enumerate(backends):
            devs.append(["-chardev", "socket,id=vub%d,path=%s" % (i, be.vhost_sock),
                         "-device", "vhost-user-blk-pci,id=blk%d,chardev=vub%d,"
                         "x-state-transfer-timeout=%d%s"
                         % (i, i, self.timeout_ms, "," + props if props else "")])
        return devs

    def start_destination(self, fault=None, props=None, binary=vt.QEMU, n=0):
        sizes = [0 if s is not None else None for s in self.sizes]
        self.dst_be = [self.backend("dst%d-%d" % (n, i), size, 2000 + i, fault,
                                    self.dst_extra)
                       for i, size in enumerate(sizes)]
        devs = self.devices(self.dst_be, self.props if props is None else props)
        if binary != vt.QEMU:
            devs = [[a.replace(",x-state-transfer-timeout=%d" % self.timeout_ms, "")
                     for a in d] for d in devs]
        self.dst = self.guest("dst%d" % n, devs, mem="128M", incoming=True,
                              binary=binary, kernel=False)
        return self.dst

    def start_migration(self):
        """Start migrating with the return path, so that a destination that
        fails to load makes the source fail and resume."""
        vt.start_migration(self.src, self.dst, "unix:" + self.path("mig.sock"),
                           caps=("return-path",), exit_on_error=False)

    def migrate(self, timeout=120):
        """Migrate (start_migration()); return query-migrate."""
        self.start_migration()
        return self.wait_migration(timeout)

    def start_stalled_migration(self):
        """Start migrating, and wait until the source back-end (started
        with --state-fault stall) holds the pipe without using it."""
        self.start_migration()
        vt.wait_for(lambda: "state transfer stalled" in self.src_be[0].log(), 60,
                    "the stall")

    def wait_migration(self, timeout=120):
        return vt.wait_migration(self.src, timeout)

    def assert_source_running(self):
        vt.wait_for(lambda: self.src.cmd("query-status")["status"] == "running",
                    30, "source to resume")

    def assert_transferred(self, i=0, dst_backend=None):
        """The destination back-end loaded the source's state byte-exact"""
        initial = [s for s in states(self.src_be[i]) if s[0] == "initial"][0]
        be = dst_backend or self.dst_be[i]
        loaded = vt.wait_for(lambda: [s for s in states(be) if s[0] == "loaded"],
                             10, "state load in %s" % be.name)
        assert loaded[-1][1:] == initial[1:], (loaded, initial)


def fds(p):
    """The fds of process p, once they stopped changing for a second: the
    firmware starts the device at its own pace (the vhost device then
    opens its inflight region), and migrations close their channels
    asynchronously."""
    last = None
    stable_since = time.monotonic()
    deadline = stable_since + 20
    while time.monotonic() < deadline:
        now = sorted(os.listdir("/proc/%d/fd" % p.pid), key=int)
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 1:
            break
        time.sleep(0.1)
    return last


# Protocol: the state arrives byte-exact, whatever its size.

@pytest.mark.parametrize("size", [0, 1, 64 * KiB + 1, MiB + 1, 40 * MiB],
                         ids=["empty", "1B", "64KiB+1", "1MiB+1", "40MiB"])
def test_state_arrives_byte_exact(size):
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(size,))
        info = s.migrate()
        assert info["status"] == "completed", info
        s.assert_transferred()
        saved = [x for x in states(s.src_be[0]) if x[0] == "saved"]
        assert saved and saved[-1][1] == size


@pytest.mark.parametrize("side", ["source", "destination"])
def test_backend_supplies_its_own_pipe(side):
    """The back-end replies to SET_DEVICE_STATE_FD with a pipe of its own
    (libvhost-user's device_state_own_pipe): QEMU uses that one."""
    own = ("--state-own-pipe",)
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(5 * MiB + 1,),
                  src_extra=own if side == "source" else (),
                  dst_extra=own if side == "destination" else ())
        before = fds(s.src)
        info = s.migrate()
        assert info["status"] == "completed", info
        s.assert_transferred()
        assert len(fds(s.src)) <= len(before)


def test_several_devices_migrate_independent_states():
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(3 * MiB + 7, 100, 0))
        info = s.migrate()
        assert info["status"] == "completed", info
        for i in range(3):
            s.assert_transferred(i)
        hashes = {states(be)[-1][2] for be in s.dst_be}
        assert len(hashes) == 3


def test_not_offered_blocks_migration_up_front():
    """backend-state=on with a back-end without the feature: a blocker
    naming the device, before anything is copied; the VM runs on."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(None,), start_dst=False)
        r = s.src.cmd_raw("migrate", uri="unix:" + os.path.join(wd.path, "x.sock"))
        assert "error" in r, r
        desc = r["error"]["desc"]
        assert "cannot migrate its state" in desc and "blk0" in desc, desc
        assert s.src.cmd("query-status")["status"] == "running"


def test_auto_without_the_feature_migrates_to_base():
    """backend-state=auto, back-end without the feature: no subsection, so
    an unpatched destination takes the stream."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(None,), props="backend-state=auto",
                  dst_props="", dst_binary=vt.QEMU_BASE)
        info = s.migrate()
        assert info["status"] == "completed", info


def test_state_to_base_fails_cleanly():
    """An unpatched destination does not know the subsection: the incoming
    migration fails, and the source keeps running."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(4 * KiB,), dst_props="", dst_binary=vt.QEMU_BASE)
        info = s.migrate()
        assert info["status"] == "failed", info
        s.assert_source_running()
        err = s.dst.cmd("query-migrate").get("error-desc", "") + s.dst.log()
        assert SUBSECTION.decode() in err, err


def test_destination_without_the_feature_fails_cleanly():
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(4 * KiB,), start_dst=False)
        s.sizes = (None,)
        s.start_destination(props="backend-state=auto")
        info = s.migrate()
        assert info["status"] == "failed", info
        s.assert_source_running()
        err = s.dst.cmd("query-migrate").get("error-desc", "") + s.dst.log()
        assert "cannot load the back-end state" in err, err


# A faulty source back-end: the migration fails, the source resumes with
# nothing leaked, and a retry succeeds.

@pytest.mark.parametrize("fault,message", [
    ("refuse", "Back-end did not accept migration state transfer"),
    ("check", "Back-end failed to process its internal state"),
    ("truncate", "Back-end failed to process its internal state"),
    ("stall", "made no progress in the state transfer for 3000 ms"),
])
def test_source_fault_fails_then_retry_succeeds(fault, message):
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(MiB + 1,), src_fault=fault)
        before = fds(s.src)
        info = s.migrate()
        assert info["status"] == "failed", info
        assert message in s.src.log(), s.src.log()
        s.assert_source_running()
        assert fds(s.src) == before
        # The destination got a broken stream; a new one takes the retry.
        s.dst.stop()
        s.start_destination(n=1)
        info = s.migrate()
        assert info["status"] == "completed", info
        s.assert_transferred()


def test_cancel_during_stalled_transfer():
    """migrate_cancel while the source back-end stalls: QEMU does not hang;
    the command is served once the transfer gives up, and the source runs."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(MiB,), src_fault="stall", timeout_ms=5000)
        before = fds(s.src)
        s.start_stalled_migration()
        s.src.cmd("migrate_cancel")
        info = s.wait_migration()
        assert info["status"] in ("cancelled", "failed"), info
        s.assert_source_running()
        assert fds(s.src) == before


def test_source_backend_killed_during_transfer():
    """The back-end dies with the transfer under way: its end of the pipe
    closes, CHECK_DEVICE_STATE cannot be sent, the migration fails."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(MiB,), src_fault="stall", timeout_ms=60000)
        s.start_stalled_migration()
        s.src_be[0].kill()
        info = s.wait_migration(timeout=30)
        assert info["status"] == "failed", info
        s.assert_source_running()


# A faulty destination back-end: the incoming side fails, the source keeps
# running.

def test_destination_backend_killed_during_transfer():
    """The destination's back-end dies while QEMU writes it the state (a
    state larger than the pipe, never read): the write fails with EPIPE,
    the incoming side fails, the source resumes."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(8 * MiB,), dst_fault="stall", timeout_ms=60000)
        s.start_migration()
        vt.wait_for(lambda: "state transfer stalled" in s.dst_be[0].log(), 60,
                    "the stall")
        s.dst_be[0].kill()
        info = s.wait_migration(timeout=30)
        assert info["status"] == "failed", info
        s.assert_source_running()
        assert "Failed to send state" in s.dst.log(), s.dst.log()

@pytest.mark.parametrize("fault,message", [
    ("close", "Failed to send state"),
    ("refuse", "Back-end failed to process its internal state"),
    ("check", "Back-end failed to process its internal state"),
    ("stall", "made no progress in the state transfer for 3000 ms"),
])
def test_destination_fault_fails_cleanly(fault, message):
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(MiB + 1,), dst_fault=fault)
        before = fds(s.dst)
        info = s.migrate()
        assert info["status"] == "failed", info
        s.assert_source_running()
        err = s.dst.log()
        assert message in err, err
        vt.wait_for(lambda: s.dst.cmd("query-migrate").get("status") == "failed",
                    30, "the incoming side to fail")
        assert fds(s.dst) == before


# A corrupt stream: the state's framing is checked on load.

def save_to_file(wd, s):
    path = os.path.join(wd.path, "state.mig")
    vt.migrate_to_file(s.src, path)
    with open(path, "rb") as f:
        return f.read()


def split_state(stream):
    """(head, [chunks], tail) around the back-end state in the stream"""
    key = bytes([0x05, len(SUBSECTION)]) + SUBSECTION + struct.pack(">I", 1)
    pos = stream.index(key) + len(key)
    head, chunks = stream[:pos], []
    while True:
        (n,) = struct.unpack(">I", stream[pos:pos + 4])
        pos += 4
        if n == 0:
            return head, chunks, stream[pos:]
        chunks.append(stream[pos:pos + n])
        pos += n


def load_from_file(wd, s, stream, n=1):
    path = os.path.join(wd.path, "edited%d.mig" % n)
    with open(path, "wb") as f:
        f.write(stream)
    return vt.load_from_file(s.start_destination(n=n), path)


def frame(chunks):
    return b"".join(struct.pack(">I", len(c)) + c for c in chunks)


def test_arbitrary_chunking_on_load():
    """Chunks of other sizes than the source's reads (1 byte, odd sizes,
    the 1 MiB maximum) give the same state."""
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(3 * MiB + 3,), start_dst=False)
        head, chunks, tail = split_state(save_to_file(wd, s))
        data = b"".join(chunks)
        assert len(data) == 3 * MiB + 3
        sizes = [1, 7, 4093, MiB, 65537, 3]
        out, pos, i = [], 0, 0
        while pos < len(data):
            n = sizes[i % len(sizes)]
            out.append(data[pos:pos + n])
            pos += n
            i += 1
        info = load_from_file(wd, s, head + frame(out) + struct.pack(">I", 0) + tail)
        assert info["status"] == "completed", info
        s.assert_transferred()


@pytest.mark.parametrize("corruption,message", [
    ("huge_chunk", "State chunk of 4294967295 bytes exceeds the maximum"),
    ("chunk_beyond_stream", "migration stream ends within a chunk"),
    ("no_terminator", "Failed to read state from migration stream"),
])
def test_corrupt_state_in_stream_fails_load(corruption, message):
    with vt.Workdir() as wd:
        s = Setup(wd, sizes=(2 * MiB,), start_dst=False)
        head, chunks, tail = split_state(save_to_file(wd, s))
        if corruption == "huge_chunk":
            stream = head + struct.pack(">I", 0xffffffff) + b"\0" * 64
        elif corruption == "chunk_beyond_stream":
            stream = head + struct.pack(">I", MiB) + chunks[0][:1000]
        else:
            stream = head + frame(chunks)
        info = load_from_file(wd, s, stream)
        assert info["status"] == "failed", info
        log = s.dst.log()
        assert message in log, log
        # Whatever reached the back-end was not taken as a state.
        assert not [x for x in states(s.dst_be[0]) if x[0] == "loaded"]


# vhost-user-fs: migration=internal|external

def fs_vm(wd, name, sock, migration):
    dev = ["-chardev", "socket,id=vuf0,path=%s" % sock,
           "-device", "vhost-user-fs-pci,id=fs0,chardev=vuf0,tag=vlmfs,"
           "migration=%s" % migration]
    return wd.add(vt.Guest(wd.path, name, [dev], mem="128M", kernel=False))


@pytest.mark.parametrize("migration", ["internal", "external"])
def test_fs_backend_without_the_feature(migration):
    """A vhost-user back-end without DEVICE_STATE (contrib/vhost-user-blk
    here: vhost-user-fs only needs a vhost-user peer for this): internal
    blocks migration up front, naming the device; external migrates."""
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img, "1M")
        be = wd.add(vt.ContribBlk(wd.path, "be", img, os.path.join(wd.path, "be.sock")))
        src = fs_vm(wd, "src", be.vhost_sock, migration)
        r = src.cmd_raw("migrate", uri="file:" + os.path.join(wd.path, "s.mig"))
        if migration == "internal":
            assert "error" in r, r
            desc = r["error"]["desc"]
            assert "cannot migrate its state" in desc and "/fs0/" in desc, desc
            assert src.cmd("query-status")["status"] == "running"
        else:
            assert "error" not in r, r
            assert vt.wait_migration(src, 60)["status"] == "completed"


@pytest.mark.parametrize("migration", ["internal", "external"])
def test_fs_state_in_stream_only_when_internal(migration):
    """With virtiofsd, which has the feature: the vhost-user-fs-backend
    subsection is in the stream with internal, and not with external."""
    if not os.access(vt.VIRTIOFSD, os.X_OK):
        pytest.fail("no %s: run scripts/virtiofsd.sh (make virtiofsd)" % vt.VIRTIOFSD)
    with vt.Workdir() as wd:
        share = os.path.join(wd.path, "share")
        os.mkdir(share)
        fsd = wd.add(vt.Virtiofsd(wd.path, "vfs", share,
                                  os.path.join(wd.path, "vfs.sock")))
        src = fs_vm(wd, "src", fsd.vhost_sock, migration)
        path = os.path.join(wd.path, "s.mig")
        vt.migrate_to_file(src, path)
        with open(path, "rb") as f:
            stream = f.read()
        assert (b"vhost-user-fs-backend" in stream) == (migration == "internal")


# vhost-user-test-device: migratable only with backend-state=on

def td_vm(wd, name, sock, props, incoming=False):
    # The firmware would probe the virtio-blk the device poses as: keep the
    # VMs paused (-S), the state transfer does not need them to run.
    dev = ["-chardev", "socket,id=vud0,path=%s" % sock,
           "-device", "vhost-user-test-device-pci,id=td0,chardev=vud0,"
           "virtio-id=2,config_size=60,num_vqs=1%s" % props]
    return wd.add(vt.Guest(wd.path, name, [dev], mem="128M", kernel=False,
                           incoming=incoming, extra=["-S"]))


def contrib(wd, name, img, extra=()):
    return wd.add(vt.ContribBlk(wd.path, name, img, os.path.join(wd.path, name + ".sock"),
                                extra=list(extra)))


@pytest.mark.parametrize("props,offered,blocked", [
    ("", True, "is not migratable without backend-state=on"),
    (",backend-state=on", False, "cannot migrate its state"),
])
def test_test_device_blocked(props, offered, blocked):
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img, "1M")
        be = contrib(wd, "be", img, ["--state-size", "100"] if offered else [])
        src = td_vm(wd, "src", be.vhost_sock, props)
        r = src.cmd_raw("migrate", uri="file:" + os.path.join(wd.path, "s.mig"))
        assert "error" in r and blocked in r["error"]["desc"], r


def test_test_device_migrates_backend_state():
    with vt.Workdir() as wd:
        img = os.path.join(wd.path, "disk.img")
        vt.create_image(img, "1M")
        src_be = contrib(wd, "src-be", img, ["--state-size", str(MiB + 1),
                                             "--state-seed", "7"])
        dst_be = contrib(wd, "dst-be", img, ["--state-size", "0"])
        src = td_vm(wd, "src", src_be.vhost_sock, ",backend-state=on")
        dst = td_vm(wd, "dst", dst_be.vhost_sock, ",backend-state=on",
                             incoming=True)
        info = vt.migrate(src, dst, "unix:" + os.path.join(wd.path, "mig"),
                          caps=("return-path",))
        assert info["status"] == "completed", info
        initial = [s for s in states(src_be) if s[0] == "initial"][0]
        loaded = vt.wait_for(lambda: [s for s in states(dst_be) if s[0] == "loaded"],
                             10, "the load")
        assert loaded[-1][1:] == initial[1:]

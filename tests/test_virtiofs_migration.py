"""virtiofs through live migration, on the real back-end: virtiofsd 1.13.2
(scripts/virtiofsd.sh), one per side, and a real Linux guest under TCG that
keeps files open on its virtiofs mount while it migrates
(tests/guest/virtiofs.sh).

The guest's FUSE session lives on in virtiofsd's inode and handle tables.
QEMU carries them in the migration stream (the vhost-user-fs-backend
subsection): it fetches them from the source's virtiofsd and hands them to
the destination's, which reopens each inode the guest holds by its path
under its own --shared-dir (--migration-mode find-paths).  virtiofsd logs
nothing when that works, so the tests read its --log-level debug request
log: the destination serves reads and writes on file handles it never
opened itself."""

import hashlib
import os
import re
import secrets
import shutil

import pytest

import vlmtest as vt

TAG = "vlmfs"
DATA_BYTES = 300 * 1024


@pytest.fixture(autouse=True)
def need_virtiofsd():
    if not os.access(vt.VIRTIOFSD, os.X_OK):
        pytest.fail("no %s: run scripts/virtiofsd.sh (make virtiofsd)" % vt.VIRTIOFSD)


class Setup(vt.Setup):
    """The shared directory (read.dat: random data; append.txt: one line
    from the host), the source's virtiofsd, and the source guest."""

    def __init__(self, wd):
        super().__init__(wd)
        self.token = secrets.token_hex(6)
        self.share = os.path.join(wd.path, "share")
        os.mkdir(self.share)
        self.data = os.urandom(DATA_BYTES)
        with open(os.path.join(self.share, "read.dat"), "wb") as f:
            f.write(self.data)
        self.host_line = "vlm-host %s\n" % self.token
        with open(os.path.join(self.share, "append.txt"), "w") as f:
            f.write(self.host_line)
        self.src_fsd = self.virtiofsd("vfs-src", self.share)
        self.src = self.guest("src", [vt.vhost_user_fs_device(self.src_fsd.vhost_sock, TAG)],
                              run="virtiofs", args=(TAG, self.token))

    def virtiofsd(self, name, shared_dir, extra=()):
        return super().virtiofsd(name, shared_dir,
                                 ["--migration-mode", "find-paths", "--log-level", "debug"] +
                                 list(extra))

    def migrate_to_other_dir(self, on_error):
        """Migrate to a destination whose shared directory has append.txt
        but lacks read.dat, which the guest holds open; return (query-migrate,
        that directory, the destination's virtiofsd, the destination)."""
        self.src.wait_console(r"^vfs ready", 120)
        other = os.path.join(self.wd.path, "other")
        os.mkdir(other)
        shutil.copy(os.path.join(self.share, "append.txt"), other)
        dst_fsd, dst = self.destination(other, on_error=on_error)
        info = vt.migrate(self.src, dst, "unix:" + os.path.join(self.wd.path, "mig"),
                          caps=("return-path",))
        return info, other, dst_fsd, dst

    def destination(self, shared_dir, on_error="abort"):
        fsd = self.virtiofsd("vfs-dst", shared_dir, ["--migration-on-error", on_error])
        dst = self.guest("dst", [vt.vhost_user_fs_device(fsd.vhost_sock, TAG)],
                         incoming=True, run="virtiofs", args=(TAG, self.token))
        return fsd, dst

    def go(self, shared_dir):
        """The guest polls for this file (through virtiofs) and then uses
        the files it holds open."""
        with open(os.path.join(shared_dir, "go"), "w"):
            pass

    def expect_read(self):
        return "read bytes=%d md5=%s" % (len(self.data), hashlib.md5(self.data).hexdigest())

    def appended(self, *which):
        return self.host_line + "".join("vlm-append %s %s\n" % (w, self.token) for w in which)


def results(guest):
    """The guest's 'vfs ...' lines after the host's go."""
    guest.wait_console(r"^vfs done", 120)
    lines = [ln[4:] for ln in guest.vlm_lines() if ln.startswith("vfs ")]
    assert "go" in lines, lines
    return lines[lines.index("go") + 1:]


def read_file(path):
    with open(path) as f:
        return f.read()


def opened_inodes(fsd):
    """Inodes the guest opened through this virtiofsd, in order."""
    return [ino for op, ino, ok in fsd.requests() if op == "Open" and ok]


def test_migrate_with_open_files():
    """The guest opens read.dat (unread) and append.txt on the source, the
    VM migrates, and on the destination it reads read.dat through the same
    fd, appends through the other, and creates a file: all of it reaches
    the shared directory on the host, served by the destination's
    virtiofsd on the handles the source's opened."""
    with vt.Workdir() as wd:
        s = Setup(wd)
        s.src.wait_console(r"^vfs ready", 120)
        src_open = opened_inodes(s.src_fsd)
        assert len(src_open) == 2, s.src_fsd.requests()
        read_ino, append_ino = src_open
        # The guest wrote its first line through fd 4 on the source.
        assert read_file(os.path.join(s.share, "append.txt")) == s.appended("before")

        dst_fsd, dst = s.destination(s.share)
        info = vt.migrate(s.src, dst, "unix:" + os.path.join(wd.path, "mig"),
                          caps=("return-path",))
        assert info["status"] == "completed", info
        assert s.src.cmd("query-status")["status"] == "postmigrate"
        s.go(s.share)
        got = results(dst)

        assert got[0] == s.expect_read(), got
        assert got[1:3] == ["append ok", "create ok"], got
        assert "new.txt" in got[3].split(), got
        assert read_file(os.path.join(s.share, "append.txt")) == \
            s.appended("before", "after")
        assert read_file(os.path.join(s.share, "new.txt")) == "vlm-new %s\n" % s.token

        # The destination's virtiofsd took the FUSE session over: it never
        # saw INIT, never opened the two files, yet served READ and WRITE on
        # the handles the guest got from the source's virtiofsd.
        reqs = dst_fsd.requests()
        ops = [r[0] for r in reqs]
        assert "Init" not in ops, reqs
        assert not [r for r in reqs if r[0] == "Open" and r[1] in src_open], reqs
        assert ("Read", read_ino, True) in reqs, reqs
        assert ("Write", append_ino, True) in reqs, reqs
        assert "Create" in ops, reqs
        assert not re.search(r"(ERROR|WARN) +virtiofsd::(vhost_user|passthrough)",
                             dst_fsd.log()), dst_fsd.log()[-3000:]


def test_destination_cannot_reopen_file_aborts():
    """The destination's shared directory lacks read.dat, which the guest
    holds open: the destination's virtiofsd fails to load the state
    (--migration-on-error abort), QEMU's incoming side fails and exits, and
    with the return path the source learns of it, resumes, and its mount
    works: the guest reads, appends and creates on the source's side.
    (Without return-path the source cannot know: it reports completed and
    stays paused in postmigrate with nowhere for the guest to run.)"""
    with vt.Workdir() as wd:
        s = Setup(wd)
        info, other, dst_fsd, dst = s.migrate_to_other_dir("abort")
        assert info["status"] == "failed", info
        vt.wait_for(lambda: not dst.alive(), 30, "destination exit")
        assert "Error loading back-end state of" in dst.log(), dst.log()
        assert "vhost-user-fs-backend" in dst.log(), dst.log()
        want = "Migration failed: Failed to load state: Inode %d: Opening %s: " \
               "No such file or directory" % (opened_inodes(s.src_fsd)[0],
                                              os.path.join(other, "read.dat"))
        assert want in dst_fsd.log(), dst_fsd.log()
        vt.wait_for(lambda: s.src.cmd("query-status")["status"] == "running", 30,
                    "source running")

        s.go(s.share)
        got = results(s.src)
        assert got[:3] == [s.expect_read(), "append ok", "create ok"], got
        assert read_file(os.path.join(s.share, "append.txt")) == \
            s.appended("before", "after")
        assert read_file(os.path.join(s.share, "new.txt")) == "vlm-new %s\n" % s.token
        assert not os.path.exists(os.path.join(other, "new.txt"))


def test_destination_cannot_reopen_file_guest_error():
    """The same with --migration-on-error guest-error on the destination:
    the migration completes, the destination's virtiofsd marks the inode it
    could not reopen invalid, and only that file fails in the guest (EIO on
    the fd); the other open file and new files work."""
    with vt.Workdir() as wd:
        s = Setup(wd)
        info, other, dst_fsd, dst = s.migrate_to_other_dir("guest-error")
        assert info["status"] == "completed", info
        assert "Invalid inode %d indexed: Opening %s: No such file or directory" % (
            opened_inodes(s.src_fsd)[0], os.path.join(other, "read.dat")) \
            in dst_fsd.log(), dst_fsd.log()

        s.go(other)
        got = results(dst)
        assert got[0] == "read error cat: read error: Input/output error", got
        assert got[1:3] == ["append ok", "create ok"], got
        assert read_file(os.path.join(other, "append.txt")) == \
            s.appended("before", "after")
        assert read_file(os.path.join(other, "new.txt")) == "vlm-new %s\n" % s.token
        assert read_file(os.path.join(s.share, "append.txt")) == s.appended("before")

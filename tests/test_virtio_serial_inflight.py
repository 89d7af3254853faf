"""A virtio-serial port throttled by its host side, with a guest buffer
held half-sent, through live migration: the bytes read on the source
before the switchover and on the destination after it are exactly what the
guest wrote, in the legacy encoding and in "virtio/inflight"."""

import os
import shutil
import socket
import struct
import threading
import time

import pytest

import vlmtest as vt

LINES = 60000
EXPECTED = b"".join(b"vlm-serial %08d\n" % i for i in range(1, LINES + 1))


def serial(sock, props):
    return ["-chardev", "socket,id=ser0,path=%s,server=on,wait=off" % sock,
            "-device", "virtio-serial-pci,id=vser0%s" % props,
            "-device", "virtserialport,chardev=ser0,name=vlm.0"]


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    vt.wait_for(lambda: s.connect_ex(path) == 0, 30, "chardev socket " + path)
    return s


class Reader(threading.Thread):
    """Reads a socket until EOF or until stop is set."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock, self.data, self.stop = sock, bytearray(), False
        sock.settimeout(0.2)

    def run(self):
        while not self.stop:
            try:
                b = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not b:
                break
            self.data += b


@pytest.mark.parametrize("props", ["", ",inflight-vmstate=on"],
                         ids=["legacy", "inflight-vmstate"])
def test_throttled_port_migrates(props):
    with vt.Workdir() as wd:
        d = wd.path
        ssock, dsock = os.path.join(d, "s.ser"), os.path.join(d, "d.ser")
        src = wd.add(vt.Guest(d, "src", [serial(ssock, props)], run="serial",
                              args=(LINES,)))
        # Connected, not reading: the socket fills and the port throttles
        # with a guest buffer half-sent.
        sc = connect(ssock)
        src.wait_console(r"^serial start", 120)
        dst = wd.add(vt.Guest(d, "dst", [serial(dsock, props)], incoming=True,
                              run="serial", args=(LINES,)))
        dc = connect(dsock)
        reader = Reader(dc)
        reader.start()
        vt.wait_for(lambda: len(src.vlm_lines()) and src.cmd("query-status")
                    ["status"] == "running", 10, "source running")
        info = vt.migrate(src, dst, "unix:" + os.path.join(d, "mig"))
        assert info["status"] == "completed", info
        assert not any("serial written" in ln for ln in src.vlm_lines()), \
            "the guest wrote everything before the switchover: nothing held"
        # What the source had sent is in its socket.
        src.stop()
        sent = bytearray()
        sc.settimeout(5)
        while True:
            b = sc.recv(65536)
            if not b:
                break
            sent += b
        assert 0 < len(sent) < len(EXPECTED)
        # awk writes the rest as the reader takes it: slow on a slow guest
        dst.wait_console(r"^serial written", 180)
        vt.wait_for(lambda: len(sent) + len(reader.data) >= len(EXPECTED), 60,
                    "the rest of the data on the destination")
        reader.stop = True
        reader.join()
        got = bytes(sent + reader.data)
        assert len(got) == len(EXPECTED), (len(sent), len(reader.data))
        assert got == EXPECTED


def throttled_stream(d, out):
    """Migrate a guest whose serial port holds a half-sent buffer to out
    (legacy encoding)."""
    ssock = os.path.join(d, "s.ser")
    with vt.Workdir() as wd:
        src = wd.add(vt.Guest(wd.path, "src", [serial(ssock, "")], run="serial",
                              args=(LINES,)))
        sc = connect(ssock)
        src.wait_console(r"^serial start", 120)
        vt.wait_for(lambda: src.cmd("query-status")["status"] == "running", 10,
                    "source running")
        src.cmd("migrate", uri="file:" + out)
        vt.wait_for(lambda: src.cmd("query-migrate")["status"] == "completed",
                    60, "migration to file")
        sc.close()
    with open(out, "rb") as f:
        return f.read()


def test_legacy_held_buffer_flows_after_the_rings_are_loaded():
    """The stream of a port holding a buffer (legacy encoding) pauses after
    the ring addresses and before the end of the device's load, as a slow
    network would: the incoming migration waits there with the main loop
    running.  The port must not send and push its element before the rings
    are set up, which breaks the device with "Virtqueue size exceeded";
    once the VM runs, the guest writes the rest."""
    d = vt.short_dir()
    try:
        data = throttled_stream(d, os.path.join(d, "good.mig"))
        i = data.find(struct.pack(">IBBI", 1, 1, 1, 1))
        assert i > 0, "no held-port record"
        # The queue is ready from here (its addresses are loaded), its
        # ring's caches not set up yet
        split = data.find(b"virtio/extra_state", data.find(b"virtio/virtqueues", i))
        assert split > i
        with vt.Workdir() as wd:
            dsock = os.path.join(wd.path, "d.ser")
            dst = wd.add(vt.Guest(wd.path, "dst", [serial(dsock, "")],
                                  incoming=True, run="serial", args=(LINES,)))
            reader = Reader(connect(dsock))
            reader.start()
            mig = os.path.join(wd.path, "mig")
            dst.cmd("migrate-incoming", uri="unix:" + mig)
            with connect(mig) as s:
                s.sendall(data[:split])
                time.sleep(2)
                s.sendall(data[split:])
            info = vt.wait_migration(dst, 60, "incoming migration")
            assert info["status"] == "completed", dst.log()
            vt.wait_for(lambda: "Virtqueue size exceeded" in dst.log() or
                        any("serial written" in ln for ln in dst.vlm_lines()),
                        180, "the guest's writer")
            reader.stop = True
            reader.join()
            assert "Virtqueue size exceeded" not in dst.log(), dst.log()
            assert reader.data.endswith(EXPECTED[-4096:])
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.asan
@pytest.mark.parametrize("field,value", [("iov_idx", 1000),
                                         ("iov_offset", 1 << 40)])
def test_legacy_position_outside_element_fails_cleanly(field, value):
    """A held buffer's position beyond the element fails the load instead
    of making the destination send from beyond the guest's buffer."""
    d = vt.short_dir()
    try:
        data = throttled_stream(d, os.path.join(d, "good.mig"))
        # Legacy port record: id, guest_connected, host_connected,
        # elem_popped = 1, iov_idx (be32), iov_offset (be64).
        rec = struct.pack(">IBBI", 1, 1, 1, 1)
        i = data.find(rec)
        assert i > 0 and data.find(rec, i + 1) < 0, "no unique held-port record"
        off = i + len(rec) + (0 if field == "iov_idx" else 4)
        fmt = ">I" if field == "iov_idx" else ">Q"
        bad = data[:off] + struct.pack(fmt, value) + data[off + struct.calcsize(fmt):]
        path = os.path.join(d, "bad.mig")
        with open(path, "wb") as f:
            f.write(bad)
        with vt.Workdir() as wd:
            dst = wd.add(vt.Guest(wd.path, "dst", [serial(os.path.join(d, "d.ser"), "")],
                                  incoming=True, extra=("-S",)))
            dst.cmd("migrate-incoming", uri="file:" + path, **{"exit-on-error": False})
            vt.wait_for(lambda: dst.cmd("query-migrate").get("status") in
                        ("completed", "failed"), 60, "incoming migration")
            assert dst.cmd("query-migrate")["status"] == "failed"
            assert dst.alive()
            dst.stop()
            assert "outside its element" in dst.log(), dst.log()
    finally:
        shutil.rmtree(d, ignore_errors=True)

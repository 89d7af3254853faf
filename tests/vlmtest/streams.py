"""Reading and editing saved migration streams: the "virtio/inflight"
subsection and upstream's "vhost-user-blk/inflight" region."""

import struct

INFLIGHT_SUB = b"virtio/inflight"
REGION_SUB = b"vhost-user-blk/inflight"
REGION_BUF = b"vhost-inflight-region/buffer"
# The split layout's header and each DescStateSplit
REGION_DESC = 16


def put(data, off, fmt, v):
    """data with v packed (struct format fmt) at off."""
    n = struct.calcsize(fmt)
    return data[:off] + struct.pack(fmt, v) + data[off + n:]


def subsection(data, name):
    """Offset of the one subsection called name (its 0x05 marker)."""
    hdr = bytes([0x05, len(name)]) + name
    i = data.find(hdr)
    assert i > 0, "no %s subsection in the stream" % name
    assert data.find(hdr, i + 1) < 0, "more than one %s subsection" % name
    return i


class InflightStream:
    """The bytes of a migration stream and the layout of its in-flight
    subsection (one queue list, then the rest of the stream)."""

    def __init__(self, data):
        self.data = data
        self.sub = subsection(data, INFLIGHT_SUB)
        p = self.sub + 2 + len(INFLIGHT_SUB)
        self.version = struct.unpack(">I", data[p:p + 4])[0]
        p += 4
        self.nvqs_off = p
        self.nvqs = struct.unpack(">H", data[p:p + 2])[0]
        p += 2
        self.elems = []            # per element: (offset of marker, end)
        for _q in range(self.nvqs):
            while data[p] == 1:
                start = p
                head, ndescs, out_num, nsegs = struct.unpack(">HHHH", data[p + 1:p + 9])
                p += 9 + 12 * nsegs
                self.elems.append((start, p, head, nsegs))
            assert data[p] == 0
            p += 1
        self.end = p

    def elem_field(self, k, field):
        """Offset of a u16 field (0 head, 1 ndescs, 2 out_num, 3 nsegs)."""
        return self.elems[k][0] + 1 + 2 * field

    def seg(self, k, j):
        """Offset of segment j of element k (u64 addr, u32 len)."""
        return self.elems[k][0] + 9 + 12 * j


class RegionStream:
    """The bytes of a stream and where its inflight region is."""

    def __init__(self, data):
        self.data = data
        p = subsection(data, REGION_SUB) + 2 + len(REGION_SUB) + 4
        self.size_off = p
        self.size = struct.unpack(">Q", data[p:p + 8])[0]
        self.qs_off = p + 8
        self.queue_size = struct.unpack(">H", data[p + 8:p + 10])[0]
        self.buf_hdr = p + 10
        assert data[self.buf_hdr:self.buf_hdr + 2 + len(REGION_BUF)] == \
            bytes([0x05, len(REGION_BUF)]) + REGION_BUF
        self.region = self.buf_hdr + 2 + len(REGION_BUF) + 4
        self.end = self.region + self.size
        r = data[self.region:self.end]
        self.inflight = [j for j in range(self.queue_size)
                         if r[REGION_DESC + REGION_DESC * j]]

    def desc(self, j):
        """Offset of DescStateSplit j of queue 0"""
        return self.region + REGION_DESC + REGION_DESC * j

    def put(self, off, fmt, v):
        return put(self.data, off, fmt, v)

"""Reading packet captures for ``inspect CAPTURE.pcap|.pcapng``: (timestamp, frame, link type) per packet.

The file formats come from dpkt: :class:`dpkt.pcap.Reader` parses and validates the libpcap file
header (magic, byte order, link type, snaplen), dpkt's ``SectionHeaderBlock`` and
``InterfaceDescriptionBlock`` parse pcapng's section and interface blocks (byte order, link type,
``if_tsresol``, ``if_tsoffset``). The per-packet records (a 16-byte libpcap record header, a pcapng
Enhanced Packet Block) are read here with :mod:`struct` from 1 MiB chunks, for three reasons
measured on dpkt 1.9.8: its readers cost 1.7 µs (pcap) and 3.1 µs (pcapng) a packet before any
decoding, more than half of the 5 µs a packet that 200,000 packets/s allows; they read a record's
length field unchecked (``read(caplen)``, and ``read(blk_len - 8)``, which for a corrupt length
below 8 reads the whole rest of the file into memory); and they yield a record cut off by the end
of the file as if it were whole. Here a corrupt length or a cut-off record raises
:class:`CaptureDamage` with its byte offset, after every packet before it has been yielded.

Only the record framing is read here; link, IP and TCP headers are decoded in :mod:`pcap_flows`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import IO, Any

import dpkt

#: link types whose frames :mod:`pcap_flows` decodes (LINKTYPE_* numbers of the pcap spec)
LINKTYPES = {1: "Ethernet", 113: "Linux cooked (SLL)", 276: "Linux cooked v2 (SLL2)", 101: "raw IP",
             228: "raw IPv4", 229: "raw IPv6", 12: "raw IP"}
ALLOWED_LINKTYPES = ("Ethernet (1), Linux cooked SLL (113, `tcpdump -i any`), SLL2 (276, tcpdump >= 4.99 "
                     "`-i any`), raw IP (101, 228, 229)")
ALLOWED_CAPTURE = "a libpcap (.pcap, `tcpdump -w`) or pcapng (.pcapng, dumpcap/Wireshark) capture"
#: libpcap's MAXIMUM_SNAPLEN: no capture tool writes a longer record
MAX_CAPLEN = 262144
#: pcapng blocks longer than this are corrupt lengths, not packets (a generous bound on options)
MAX_BLOCK = 16 * 1024 * 1024
CHUNK = 1 << 20

_PCAP_MAGIC = {  # first four bytes of the file -> (little-endian, nanosecond timestamps)
    b"\xd4\xc3\xb2\xa1": (True, False), b"\x4d\x3c\xb2\xa1": (True, True),
    b"\xa1\xb2\xc3\xd4": (False, False), b"\xa1\xb2\x3c\x4d": (False, True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_BOM_LE = b"\x4d\x3c\x2b\x1a"
_BOM_BE = b"\x1a\x2b\x3c\x4d"


class CaptureDamage(Exception):
    """The capture is cut off or corrupt at byte ``offset``; every packet before it was yielded."""

    def __init__(self, problem: str, offset: int) -> None:
        self.problem = problem
        self.offset = offset
        super().__init__(f"{problem} at byte {offset:,}")


def capture_format(head: bytes) -> str | None:
    """``pcap`` or ``pcapng`` from a file's first four bytes, else None."""
    if head[:4] in _PCAP_MAGIC:
        return "pcap"
    if head[:4] == _PCAPNG_SHB:
        return "pcapng"
    return None


class Capture:
    """An open capture: ``format`` (pcap | pcapng), ``linktype`` (of the first interface) and
    :meth:`packets`, which yields ``(timestamp_s, frame, linktype)`` and raises
    :class:`CaptureDamage` where the file stops making sense. ``ValueError`` from the constructor:
    not a capture at all (bad magic, bad first block)."""

    def __init__(self, fh: IO[bytes]) -> None:
        self._fh = fh
        head = fh.read(4)
        self.format = capture_format(head)
        self.linktypes: list[int] = []
        if self.format == "pcap":
            try:
                reader = dpkt.pcap.Reader(_Prefixed(head, fh))  # validates the 24-byte file header
            except dpkt.UnpackError:
                raise CaptureDamage("truncated: the 24-byte file header is cut off", 0) from None
            self._le, nano = _PCAP_MAGIC[head]
            self._div = 1e9 if nano else 1e6
            self.linktype = reader.datalink()
            self.linktypes = [self.linktype]
            self._maxcap = min(max(MAX_CAPLEN, reader.snaplen), MAX_BLOCK)
            self._start = 24
        elif self.format == "pcapng":
            self._data = head + _read_exactly(fh, 8, "the section header block is cut off", 4)
            self.linktype = -1
            self._start = 0
        else:
            raise ValueError(f"not a capture: the file starts with bytes {head.hex() or '(none)'}")

    def packets(self) -> Iterator[tuple[float, bytes, int]]:
        """(timestamp in seconds, the captured frame, its link type), in file order."""
        if self.format == "pcap":
            return self._pcap()
        return self._pcapng()

    def _pcap(self) -> Iterator[tuple[float, bytes, int]]:
        unpack_from = struct.Struct("<IIII" if self._le else ">IIII").unpack_from
        div, maxcap, link, read = self._div, self._maxcap, self.linktype, self._fh.read
        data, pos, base = b"", 0, self._start
        while True:
            chunk = read(CHUNK)
            if not chunk:
                if pos < len(data):
                    raise CaptureDamage(f"truncated: the last record is cut off ({len(data) - pos} bytes of it left)",
                                        base + pos)
                return
            data, base, pos = data[pos:] + chunk, base + pos, 0
            n = len(data)
            while n - pos >= 16:
                sec, frac, caplen, _wire = unpack_from(data, pos)
                if caplen > maxcap or frac >= div:
                    what = f"record length {caplen:,}" if caplen > maxcap else f"sub-second field {frac:,}"
                    raise CaptureDamage(f"corrupt packet record ({what})", base + pos)
                end = pos + 16 + caplen
                if end > n:
                    break
                yield sec + frac / div, data[pos + 16:end], link
                pos = end

    def _pcapng(self) -> Iterator[tuple[float, bytes, int]]:  # noqa: C901 - one block kind per branch
        read = self._fh.read
        data, pos, base = self._data, 0, 0
        le = True
        head = struct.Struct("<II").unpack_from
        epb = struct.Struct("<IIIII").unpack_from
        pb = struct.Struct("<HHIII").unpack_from
        u32 = struct.Struct("<I").unpack_from
        ifaces: list[tuple[int, float, int]] = []  # (link type, ticks per second, offset s) per interface
        seen_shb = False
        while True:
            n = len(data)
            while n - pos >= 12:
                kind, blen = head(data, pos)
                if kind == 0x0A0D0D0A:  # a palindrome: the section's byte order is in the block
                    bom = data[pos + 8:pos + 12]
                    if bom not in (_BOM_LE, _BOM_BE):
                        raise CaptureDamage("corrupt section header block (byte-order magic)", base + pos)
                    le = bom == _BOM_LE
                    order = "<" if le else ">"
                    head = struct.Struct(order + "II").unpack_from
                    epb = struct.Struct(order + "IIIII").unpack_from
                    pb = struct.Struct(order + "HHIII").unpack_from
                    u32 = struct.Struct(order + "I").unpack_from
                    kind, blen = head(data, pos)
                elif not seen_shb:
                    raise CaptureDamage("no section header block first", base + pos)
                if blen < 12 or blen % 4 or blen > MAX_BLOCK:
                    raise CaptureDamage(f"corrupt block length {blen:,}", base + pos)
                end = pos + blen
                if end > n:
                    break
                if u32(data, end - 4)[0] != blen:
                    raise CaptureDamage("corrupt block (its two length fields differ)", base + pos)
                if kind == 6:  # Enhanced Packet Block: the common case
                    iface, hi, lo, caplen, _wire = epb(data, pos + 8)
                    if caplen > blen - 32 or iface >= len(ifaces):
                        raise CaptureDamage(f"corrupt enhanced packet block (length {caplen:,}, interface {iface})",
                                            base + pos)
                    link, tps, off = ifaces[iface]
                    yield off + ((hi << 32) | lo) / tps, data[pos + 28:pos + 28 + caplen], link
                elif kind == 2:  # obsolete Packet Block: a 16-bit interface id and a drop count
                    iface, _drops, hi, lo, caplen = pb(data, pos + 8)
                    if caplen > blen - 32 or iface >= len(ifaces):
                        raise CaptureDamage("corrupt packet block", base + pos)
                    link, tps, off = ifaces[iface]
                    yield off + ((hi << 32) | lo) / tps, data[pos + 28:pos + 28 + caplen], link
                elif kind == 1:
                    ifaces.append(_interface(data[pos:end], le, base + pos))
                    self.linktypes.append(ifaces[-1][0])
                    if self.linktype < 0:
                        self.linktype = ifaces[-1][0]
                elif kind == 0x0A0D0D0A:
                    _section(data[pos:end], le, base + pos)
                    seen_shb, ifaces = True, []
                pos = end
            chunk = read(CHUNK)
            if not chunk:
                if pos < len(data):
                    raise CaptureDamage(f"truncated: the last block is cut off ({len(data) - pos} bytes of it left)",
                                        base + pos)
                return
            data, base, pos = data[pos:] + chunk, base + pos, 0


def _section(buf: bytes, le: bool, offset: int) -> None:
    try:
        shb = dpkt.pcapng.SectionHeaderBlockLE(buf) if le else dpkt.pcapng.SectionHeaderBlock(buf)
    except (dpkt.UnpackError, struct.error) as exc:
        raise CaptureDamage(f"corrupt section header block ({exc})", offset) from None
    if shb.v_major != dpkt.pcapng.PCAPNG_VERSION_MAJOR:
        raise CaptureDamage(f"pcapng version {shb.v_major}.{shb.v_minor} (allowed: 1.x)", offset)


def _interface(buf: bytes, le: bool, offset: int) -> tuple[int, float, int]:
    """(link type, timestamp ticks per second, timestamp offset in s) of an Interface Description Block,
    the options read as dpkt's own pcapng.Reader reads them."""
    try:
        idb: Any = dpkt.pcapng.InterfaceDescriptionBlockLE(buf) if le else dpkt.pcapng.InterfaceDescriptionBlock(buf)
    except (dpkt.UnpackError, struct.error) as exc:
        raise CaptureDamage(f"corrupt interface description block ({exc})", offset) from None
    tps, tsoff = 1e6, 0
    for opt in idb.opts:
        if opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSRESOL and opt.data:
            v = opt.data[0]
            tps = float((2 if v & 0x80 else 10) ** (v & 0x7F))
        elif opt.code == dpkt.pcapng.PCAPNG_OPT_IF_TSOFFSET and len(opt.data) >= 8:
            tsoff = struct.unpack("<q" if le else ">q", opt.data[:8])[0]
    if tps <= 0 or tps == float("inf"):
        raise CaptureDamage("corrupt interface description block (if_tsresol)", offset)
    return idb.linktype, tps, tsoff


def _read_exactly(fh: IO[bytes], n: int, problem: str, offset: int) -> bytes:
    data = fh.read(n)
    if len(data) < n:
        raise CaptureDamage(problem, offset)
    return data


class _Prefixed:
    """A file object that first returns ``head`` (already read to sniff the format), then ``fh``:
    dpkt.pcap.Reader reads the file header through it."""

    def __init__(self, head: bytes, fh: IO[bytes]) -> None:
        self._head, self._fh = head, fh
        self.name = getattr(fh, "name", "<capture>")

    def read(self, n: int) -> bytes:
        head, self._head = self._head[:n], self._head[n:]
        return head + self._fh.read(n - len(head)) if n > len(head) else head

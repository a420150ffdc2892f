"""Per-TCP-flow state for ``inspect CAPTURE.pcap``, built in one streaming pass over the packets.

Link, IPv4/IPv6 and TCP headers are decoded here with :mod:`struct` and byte indexing, not with
``dpkt.ethernet.Ethernet``: decoding every frame into dpkt objects runs at about 100,000 packets/s
(measured), half the 200,000 packets/s the issue asks for. Only the fields used are read.

What is recognised, per side of a flow (kernel-keepalive.md):

- a **keepalive probe** (R21): a segment without SYN/FIN/RST, with 0 or 1 byte of payload and
  seq = the side's next sequence number − 1, while the peer's window is open (else it is a
  zero-window probe, which has the same form). A 1-byte one must also come when the peer has
  acknowledged everything (snd_una = snd_nxt: keepalive is inert with data outstanding, R15), else
  it is the last byte retransmitted; a 0-byte one needs no ACK in the capture (a pure ACK may be
  missing from it). This is tshark's ``tcp.analysis.keep_alive`` rule plus those conditions. A live
  peer answers with a duplicate ACK (R22).
- the **observed TCP_KEEPIDLE**: from the last segment received from the peer to a probe, when no
  probe is outstanding (R10: an answer restarts the idle time, so with a live peer and
  TCP_KEEPINTVL < TCP_KEEPIDLE probes come every TCP_KEEPIDLE, kernel-keepalive.md §3);
- the **observed TCP_KEEPINTVL**: from a probe to the next one when nothing came back in between;
- the **observed TCP_KEEPCNT**: the unanswered probes before the prober's own reset (R19, R20);
- a **retransmission**: a segment carrying data (or SYN/FIN) that starts before the side's next
  sequence number. A *burst* is the retransmissions of one side until the peer acknowledges past the
  first of them (or a reset, or the end of the capture);
- every **RST**, with the idle time before it and whether it answered a keepalive probe (R23).

Memory is bounded: a flow is two small ``__slots__`` objects and two dictionary keys, and at most
``max_flows`` flows are tracked; packets of flows beyond the cap are counted, not kept.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable

from sim.integrations.pcap_read import CaptureDamage

FIN, SYN, RST, ACK = 1, 2, 4, 16
M32, HALF = 0xFFFFFFFF, 0x80000000
#: at most this many RSTs and retransmission bursts are listed per flow (all are counted)
LIST_CAP = 8
#: a copy of the same segment within this time is the same packet captured twice (``tcpdump -i any``
#: on a node sees a pod's packet on the veth and on the uplink), not a retransmission (RTO >= 200 ms)
DUP_S = 0.001
DEFAULT_MAX_FLOWS = 200_000
#: a closed flow's state is kept this long (s of capture time) for its late packets (TIME_WAIT is 60 s)
LINGER_S = 60.0

_IP4 = struct.Struct(">BBHHHBB").unpack_from  # version/IHL, TOS, total length, id, flags/fragment, TTL, protocol
_TCP = struct.Struct(">IIHH").unpack_from  # seq, ack, data offset/flags, window (from TCP byte 4)


class KaStats:
    """Keepalive probes sent by one side (times in seconds)."""

    __slots__ = ("probes", "answered", "pending", "last", "run", "idle_min", "idle_max", "idle_n", "intvl_min",
                 "intvl_max", "intvl_n", "count")

    def __init__(self) -> None:
        self.probes = self.answered = self.run = self.idle_n = self.intvl_n = 0
        self.pending = False  # the last probe is not answered yet
        self.last = 0.0
        self.idle_min = self.idle_max = self.intvl_min = self.intvl_max = -1.0
        self.count: int | None = None  # unanswered probes before the prober's own reset (TCP_KEEPCNT)


class Burst:
    """Retransmissions by one side until the peer acknowledges past the first of them."""

    __slots__ = ("start", "last", "n", "seq", "ended")

    def __init__(self, ts: float, seq_end: int) -> None:
        self.start = self.last = ts
        self.n = 1
        self.seq = seq_end
        self.ended = ""


class Side:
    """One direction of a flow: what its sender sent (sequence numbers mod 2^32, times in seconds)."""

    __slots__ = ("flow", "peer", "key", "nxt", "ack", "last_tx", "l_seq", "ttl", "win0", "fin", "ka", "rt", "rt_n",
                 "bursts", "burst_n")

    def __init__(self, flow: Flow, key: bytes) -> None:
        self.flow = flow
        self.key = key
        self.peer: Side = self
        self.nxt: int | None = None  # next sequence number (highest seq + length seen)
        self.ack: int | None = None  # highest ACK it sent: the peer's snd_una
        self.last_tx = -1.0
        self.l_seq = -1
        self.ttl = -1
        self.win0 = False  # it advertised a zero window
        self.fin = False
        self.ka: KaStats | None = None
        self.rt: Burst | None = None  # the open burst
        self.rt_n = 0
        self.bursts: list[Burst] | None = None
        self.burst_n = 0


class Flow:
    """A TCP flow (4-tuple) and its two sides ``a`` (sender of its first packet) and ``b``."""

    __slots__ = ("id", "a", "b", "first", "last", "gap", "max_idle", "max_idle_at", "packets", "client", "rsts",
                 "rst_n", "closed")

    def __init__(self, fid: int, ts: float, key: bytes, rev: bytes) -> None:
        self.id = fid
        self.a = Side(self, key)
        self.b = Side(self, rev)
        self.a.peer, self.b.peer = self.b, self.a
        self.first = self.last = ts
        self.gap = 0.0  # the idle time before the last packet (s)
        self.max_idle = 0.0
        self.max_idle_at = ts
        self.packets = 0
        self.client: Side | None = None  # the SYN's sender, when the handshake was captured
        #: (t, from, idle before it, whether it answers the peer's keepalive probe, its TTL, the sender's usual TTL)
        self.rsts: list[tuple[float, Side, float, bool, int, int]] | None = None
        self.rst_n = 0
        self.closed = ""


class Scan:
    """The result of a pass: counts of what was read and what was not analysed (the flows went to
    ``on_flow`` as they ended)."""

    def __init__(self, max_flows: int) -> None:
        self.max_flows = max_flows
        self.flows = 0
        self.packets = self.tcp = self.other = self.short = self.untracked = self.untracked_syns = self.dups = 0
        self.first_ts: float | None = None
        self.last_ts = 0.0
        self.linktypes: set[int] = set()
        self.damage: CaptureDamage | None = None


def _reverse(key: bytes) -> bytes:
    n = (len(key) - 4) // 2
    return key[n:2 * n] + key[:n] + key[2 * n + 2:] + key[2 * n:2 * n + 2]


def scan(packets: Iterable[tuple[float, bytes, int]], on_flow: Callable[[Flow], None],  # noqa: C901, PLR0912, PLR0915
         res: Scan) -> Scan:
    """One pass over ``packets`` ((timestamp s, frame, link type)). Each flow goes to ``on_flow`` once:
    LINGER_S after it closed (RST, or FIN both ways), its state then freed, or at the end. A
    :class:`CaptureDamage` raised by the iterator ends the pass and is kept in ``damage`` (what was read
    before it is reported). At most ``res.max_flows`` flows are open at once."""
    sides: dict[bytes, Side] = {}
    closing: deque[tuple[float, Flow]] = deque()
    cap = 2 * res.max_flows
    n_flows = 0
    ip4, tcp = _IP4, _TCP
    n_pkts = n_tcp = 0
    ts = 0.0
    try:
        for ts, buf, link in packets:
            n_pkts += 1
            if not n_pkts & 0xFFF and closing:  # every 4096 packets: free flows closed LINGER_S ago
                while closing and closing[0][0] < ts - LINGER_S:
                    _evict(sides, closing.popleft()[1], on_flow)
            try:
                # --- link layer: the ethertype and where IP starts
                if link == 1:
                    et = buf[12] << 8 | buf[13]
                    off = 14
                    while et == 0x8100 or et == 0x88A8:  # 802.1Q / QinQ tags
                        et = buf[off + 2] << 8 | buf[off + 3]
                        off += 4
                elif link == 276:
                    et = buf[0] << 8 | buf[1]
                    off = 20
                elif link == 113:
                    et = buf[14] << 8 | buf[15]
                    off = 16
                elif link in (101, 228, 229, 12):
                    et = 0x86DD if buf[0] >> 4 == 6 else 0x800
                    off = 0
                else:
                    res.linktypes.add(link)
                    res.other += 1
                    continue
                # --- IP: TCP only; the payload length from the IP header, not the (maybe snapped) frame
                if et == 0x800:
                    vihl, _tos, total, _id, frag, ttl, proto = ip4(buf, off)
                    if proto != 6 or frag & 0x1FFF:
                        res.other += 1
                        continue
                    ihl = (vihl & 15) << 2
                    iplen = total - ihl
                    t = off + ihl
                    # addresses and ports: contiguous when there are no IP options (one slice, not three)
                    key = buf[off + 12:off + 24] if ihl == 20 else buf[off + 12:off + 20] + buf[t:t + 4]
                elif et == 0x86DD:
                    if buf[off + 6] != 6:  # extension headers are not followed
                        res.other += 1
                        continue
                    iplen = buf[off + 4] << 8 | buf[off + 5]
                    ttl = buf[off + 7]
                    t = off + 40
                    key = buf[off + 8:off + 40] + buf[t:t + 4]
                else:
                    res.other += 1
                    continue
                seq, ack, offflags, win = tcp(buf, t + 4)
            except (IndexError, struct.error):
                res.short += 1
                continue
            n_tcp += 1
            flags = offflags & 0x3F
            payload = iplen - ((offflags >> 12) << 2)
            if payload < 0:  # a bogus IP length (e.g. TSO on the sending host): use what was captured
                payload = max(0, len(buf) - t - ((offflags >> 12) << 2))
            # --- the flow and side
            s = sides.get(key)
            if s is None or (flags & SYN and not flags & ACK and s.flow.closed):
                while len(sides) >= cap and closing and closing[0][0] < ts - LINGER_S:
                    _evict(sides, closing.popleft()[1], on_flow)
                if len(sides) >= cap and s is None:
                    res.untracked += 1
                    if flags & SYN and not flags & ACK:
                        res.untracked_syns += 1
                    continue
                n_flows += 1
                if n_flows == 1:
                    res.first_ts = ts
                f = Flow(n_flows, ts, key, _reverse(key))
                s = sides[key] = f.a
                sides[f.b.key] = f.b
            o = s.peer
            f = s.flow
            gap = ts - f.last
            if gap > f.max_idle:
                f.max_idle = gap
                f.max_idle_at = f.last
            f.last = ts
            f.packets += 1
            if flags & RST:  # idle before it: the gap before it, or before the packet it answers
                if not f.closed:
                    closing.append((ts, f))
                _rst(s, o, f, ts, max(gap, f.gap), ttl)
                s.last_tx = ts
                continue
            f.gap = gap
            k = o.ka
            if k is not None and k.pending:  # anything from the peer answers its probe (R10)
                k.pending = False
                k.answered += 1
            if flags & 3:
                if flags & SYN:
                    if not flags & ACK:
                        f.client = s
                    elif f.client is None:
                        f.client = o
                if flags & FIN:
                    s.fin = True
                    if o.fin and not f.closed:
                        f.closed = "fin"
                        closing.append((ts, f))
                seglen = payload + 1
            else:
                seglen = payload
            if flags & ACK:
                a = s.ack
                if a is None or (ack - a) & M32 < HALF:
                    s.ack = ack
                    n = o.nxt
                    if n is not None and 0 < (ack - n) & M32 < HALF:  # acks what the capture missed
                        o.nxt = ack
                r = o.rt
                if r is not None and (ack - r.seq) & M32 < HALF:
                    _close_burst(o, "acked")
            nxt = s.nxt
            if nxt is None:
                if o.ack is None or flags & SYN:
                    s.nxt = (seq + seglen) & M32
                else:  # joined mid-flow: the peer's ACK says where this side is
                    nxt = s.nxt = o.ack
            if nxt is not None:
                d = (seq - nxt) & M32
                if d == M32 and payload <= 1 and not flags & 7 and not o.win0 and (
                        not payload or o.ack is None or o.ack == nxt):
                    _probe(s, o, ts, res)
                elif seglen and d >= HALF:
                    _retransmission(s, ts, seq, seglen, res)
                else:
                    end = (seq + seglen) & M32
                    if (end - nxt) & M32 < HALF:
                        s.nxt = end
            s.win0 = win == 0
            s.last_tx = ts
            s.l_seq = seq
            s.ttl = ttl
    except CaptureDamage as exc:
        res.damage = exc
    res.packets, res.tcp, res.last_ts, res.flows = n_pkts, n_tcp, ts, n_flows
    for _, f in closing:
        _evict(sides, f, on_flow)
    for side in list(sides.values()):
        if side is side.flow.a:
            _evict(sides, side.flow, on_flow)
    return res


def _evict(sides: dict[bytes, Side], f: Flow, on_flow: Callable[[Flow], None]) -> None:
    """Hand a flow to ``on_flow`` and forget it (its keys may already belong to a newer flow: port reuse)."""
    if f.id < 0:
        return
    for side in (f.a, f.b):
        if sides.get(side.key) is side:
            del sides[side.key]
        if side.rt is not None:
            _close_burst(side, "capture end")
    on_flow(f)
    f.id = -f.id  # handed over


def _probe(s: Side, o: Side, ts: float, res: Scan) -> None:
    k = s.ka
    if k is None:
        k = s.ka = KaStats()
    elif ts - k.last < DUP_S and k.probes:
        res.dups += 1
        return
    if k.pending:  # the previous probe went unanswered: this one came TCP_KEEPINTVL later
        v = ts - k.last
        k.intvl_min = v if k.intvl_n == 0 else min(k.intvl_min, v)
        k.intvl_max = max(k.intvl_max, v)
        k.intvl_n += 1
        k.run += 1
    else:  # idle since the peer's last segment: TCP_KEEPIDLE (R10, R16)
        if o.last_tx >= 0:
            v = ts - o.last_tx
            k.idle_min = v if k.idle_n == 0 else min(k.idle_min, v)
            k.idle_max = max(k.idle_max, v)
            k.idle_n += 1
        k.run = 1
    k.pending = True
    k.last = ts
    k.probes += 1


def _retransmission(s: Side, ts: float, seq: int, seglen: int, res: Scan) -> None:
    if ts - s.last_tx < DUP_S and seq == s.l_seq:
        res.dups += 1
        return
    s.rt_n += 1
    r = s.rt
    if r is None:
        s.rt = Burst(ts, (seq + seglen) & M32)
    else:
        r.n += 1
        r.last = ts


def _close_burst(s: Side, why: str) -> None:
    r = s.rt
    assert r is not None
    r.ended = why
    s.rt = None
    s.burst_n += 1
    if s.bursts is None:
        s.bursts = []
    if len(s.bursts) < LIST_CAP:
        s.bursts.append(r)
    elif r.n > min(b.n for b in s.bursts):  # keep the largest bursts
        s.bursts.remove(min(s.bursts, key=lambda b: b.n))
        s.bursts.append(r)


def _rst(s: Side, o: Side, f: Flow, ts: float, gap: float, ttl: int) -> None:
    k = o.ka
    answers_probe = k is not None and k.pending  # the peer's probe was the last thing it sent (R23)
    if answers_probe:
        assert k is not None
        k.pending = False
    mine = s.ka
    if mine is not None and mine.pending:  # the prober gives up: R19 sends an RST after TCP_KEEPCNT probes
        mine.count = mine.run
        mine.pending = False
    f.rst_n += 1
    if f.rsts is None:
        f.rsts = []
    if len(f.rsts) < LIST_CAP:
        f.rsts.append((ts, s, gap, answers_probe, ttl, s.ttl))
    for side in (s, o):
        if side.rt is not None:
            _close_burst(side, "reset")
    f.closed = "rst"

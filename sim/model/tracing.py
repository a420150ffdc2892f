"""The packet trace of one connection (``World.trace_conn``): every packet with its numbers, its
cause and its fate, and the middleboxes' and sockets' verdicts in between.

Only the traced connection has a ``Trace`` (``Path.trace`` is None for every other one), so the
hot path pays one ``is not None`` test per packet. Each entry is a tuple in the order of
``sim.facts.names.TRACE_FIELDS``; ``sim.metrics.packets`` turns them into timelines, the report's
figure and pcap captures.
"""

from __future__ import annotations

from typing import Any

from sim.facts.names import H2_CONTROL_FRAME_BYTES
from sim.model.messages import GOAWAY, PING, PING_ACK, Msg
from sim.model.segment import ACK, CLOSED, DATA, FIN, KIND_NAMES, LISTEN, PROBE, RST, SYN, SYN_SENT, SYNACK, Seg


class Trace:
    """The entries of one traced connection, in the order they were decided."""

    __slots__ = ("events", "sizes", "sent_max", "ctl_sent")

    def __init__(self, sizes: tuple[int, int]) -> None:
        self.events: list[tuple] = []
        #: application bytes of a request (opener to acceptor) and of a response
        self.sizes = sizes
        #: the highest DATA seq each side (opener, acceptor) has sent: a lower one is a retransmission
        self.sent_max = [-1, -1]
        #: the kinds of SYN / SYN-ACK / FIN each side has sent: a second one is a retransmission
        self.ctl_sent: list[set[int]] = [set(), set()]

    def note(self, t_s: float, lane: str, kind: str, text: str, at: str = "") -> None:
        """A verdict that is not a packet: a middlebox forgetting the flow (``expired``), a socket's
        error (``error``), a fault."""
        self.events.append((t_s, lane, kind, text, "", 0, 0, 0, "fault" if "fault" in text or kind == "fault" else "",
                            "", t_s, at))

    def append(self, event: tuple) -> None:
        """A ``(t_s, lane, kind, note)`` verdict, the trace's older form (kept for code that appends
        one, e.g. a fault's verdict): recorded as a note."""
        t_s, lane, kind, text = event
        self.note(t_s, lane, kind, text)

    def packet(self, sock: Any, seg: Seg, t_s: float, to_b: bool, fate: str, stop_s: float, at: str) -> None:
        """One packet, sent at ``t_s`` by ``sock`` (None: made by a middlebox on the path) towards the
        acceptor (``to_b``) or the opener; ``fate`` ``delivered`` (at ``stop_s``), ``dropped`` or
        ``rst`` (the middlebox ``at`` answered it with an RST) at ``stop_s``."""
        side = 0 if to_b else 1
        kind = seg.kind
        length = 0
        if kind == DATA:
            length = max(self._size(seg.payload, side), 1)  # a 0-byte message is still a segment
        self.events.append((t_s, "lb" if sock is None else ("client" if to_b else "server"), KIND_NAMES[kind],
                            seg.origin if sock is None else "", "server" if to_b else "client", seg.seq, seg.ack,
                            length, self._cause(sock, seg, side), fate, stop_s, at))

    def _size(self, payload: Any, side: int) -> int:
        if isinstance(payload, Msg):
            if payload.status in (PING, PING_ACK, GOAWAY):
                return H2_CONTROL_FRAME_BYTES
            if payload.size_bytes >= 0:
                return payload.size_bytes
        return self.sizes[side]

    def _cause(self, sock: Any, seg: Seg, side: int) -> str:
        """Why the packet was sent, read off the sender's state at the moment it sends."""
        kind = seg.kind
        if "fault" in seg.origin:
            return "fault"
        if sock is None:  # the path's own: an RST to a late packet, or an expiry notice
            return "lb rst" if kind == RST and seg.provoked_by >= 0 else "expiry"
        if kind == SYN or kind == SYNACK or kind == FIN:
            sent = self.ctl_sent[side]
            if kind in sent:
                return "syn retry" if kind != FIN else ("tlp" if sock.retransmits == 0 else "rto")
            sent.add(kind)
            return "close" if kind == FIN else "handshake"
        if kind == DATA:
            if seg.seq <= self.sent_max[side]:
                # R29: the loss probe comes first (retransmits stays 0); every RTO counts (R31)
                return "tlp" if sock.retransmits == 0 else "rto"
            self.sent_max[side] = seg.seq
            return "data"
        if kind == PROBE:
            return "keepalive"
        if kind == ACK:
            if seg.probe_ack:
                return "keepalive ack"
            return "handshake" if sock.state == SYN_SENT else "ack"
        # RST from a host
        if seg.provoked_by == DATA:
            return "abort"  # new data for a socket its application closed
        if sock.state == CLOSED or sock.state == LISTEN:
            return "rst"  # R23: no socket for that segment
        return "keepalive timeout" if sock.probes_out > 0 else "reset"  # R19

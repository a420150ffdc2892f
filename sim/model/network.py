"""A path between two sockets through zero or more middleboxes, ``hop_delay_s`` per hop.

A segment is handed to each middlebox *when it is sent*, stamped with its arrival time there, and
scheduled as one event at the far endpoint. With one middlebox and equal hop delays this is exact:
every packet reaches the middlebox exactly one hop after it was sent, so send order is arrival
order. Chains of middleboxes are approximated at the scale of one hop delay (docs/model.md).
"""

from __future__ import annotations

import functools

from sim.model.acks import ack_later
from sim.model.clock import Scheduler
from sim.model.faults import TAKEN, Fault, first_taking
from sim.model.kernel import TcpSocket
from sim.model.middlebox import BOUNCE, FORWARD, Flow, Middlebox
from sim.model.segment import ACK, ESTABLISHED, RST, Seg
from sim.model.tracing import Trace


@functools.lru_cache(maxsize=16)
def path_rtt_s(hop_s: float, middleboxes: int) -> float:
    """Round trip over ``middleboxes + 1`` hops; cached, so a fleet's paths share the value."""
    return 2 * hop_s * (middleboxes + 1)


class Path:
    """Two endpoints (``a`` opened the connection) and the flows of the middleboxes between."""

    __slots__ = ("sched", "a", "b", "mbs", "flows", "hop_s", "rtt_s", "trace", "faults", "fault_ends", "port_group",
                 "klass")

    def __init__(self, sched: Scheduler, mbs: list[Middlebox], hop_s: float) -> None:
        self.sched = sched
        self.a: TcpSocket | None = None
        self.b: TcpSocket | None = None
        self.mbs = mbs
        #: one per middlebox, each made by the SYN as it passes
        self.flows: tuple[Flow, ...] = ()
        self.hop_s = hop_s
        self.rtt_s = path_rtt_s(hop_s, len(mbs))
        #: the traced connection's packets and verdicts (sim.model.tracing); None on every other path
        self.trace: Trace | None = None
        #: the faults standing at the far end of this leg, checked on every segment that gets there
        #: (sim.model.faults); None when there are none
        self.faults: tuple[Fault, ...] | None = None
        #: whether they stand at ``a``'s end and at ``b``'s (a terminating LB's socket is no leg end)
        self.fault_ends = (True, True)
        #: the client instance that opened it, whose port budget a per-instance NAT charges
        #: (sim.model.ports): the slot's machine on the client's leg, 0 (the one opener) elsewhere
        self.port_group = 0
        #: the traffic class (its index) of the slot whose connection it is: the device ledger its
        #: flows count in (sim.model.ledger), as the ``class`` column names it
        self.klass = 0

    def attach(self, a: TcpSocket, b: TcpSocket) -> None:
        """Wire both sockets' transmit to this path and seed their RTT."""
        self.a, self.b = a, b
        a.tx = b.tx = self  # the path is both sockets' transmit callable (no bound method each)
        a.set_rtt(self.rtt_s)
        b.set_rtt(self.rtt_s)

    def __call__(self, sock: TcpSocket | None, seg: Seg, pos: int = -1, step: int = 1, t_s: float = 0.0) -> bool:
        """``sock.tx(sock, seg)``: put a segment on the wire now; one call per packet on the hot
        path. The path's own segments (a middlebox's RST or expiry notice) start at hop ``pos`` at
        ``t_s`` instead, going ``step`` (+1 towards ``b``). Returns whether it will arrive."""
        mbs = self.mbs
        n = len(mbs)
        if pos < 0:
            t_s = self.sched.now_s
            if sock is self.a:
                pos = 0
            else:
                pos, step = n + 1, -1
        hop = self.hop_s
        kind = seg.kind
        trace = self.trace
        sent_s = t_s
        q = pos + step
        flows = self.flows
        while 0 < q <= n:
            t_s += hop
            i = q - 1
            if i >= len(flows):  # the SYN creates each flow as it passes (a full table refuses it)
                verdict = mbs[i].admit(seg, step > 0, t_s, self.port_group, self.klass)
                if verdict == FORWARD:
                    self.flows = flows = flows + (mbs[i].open_flow(self, i, t_s),)
                    q += step
                    continue
            else:
                verdict = mbs[i].handle(flows[i], kind, seg, step > 0, t_s)
            if verdict != FORWARD:
                if verdict == TAKEN:  # a fault in front of the device took it (sim.model.faults)
                    if trace is not None:
                        trace.packet(sock, seg, sent_s, step > 0, "fault", t_s, mbs[i].took.label)
                    mbs[i].took.take(self, seg, q, step, t_s)
                    return False
                if trace is not None:
                    trace.packet(sock, seg, sent_s, step > 0, "rst" if verdict == BOUNCE else "dropped", t_s,
                                 mbs[i].spec.name)
                # the receiver may be waiting for this segment (an ACK): let its timers run
                waiting = self.b if step > 0 else self.a
                assert waiting is not None  # attached before any segment is sent
                waiting.segment_lost()
                if verdict == BOUNCE:
                    rst = Seg(RST, seg.ack, 0)
                    rst.origin = mbs[i].spec.name
                    rst.provoked_by = kind
                    self(None, rst, q, -step, t_s)
                return False
            q += step
        faults = self.faults
        if faults is not None and self.fault_ends[step > 0]:  # faults at this end of the leg (faults.py)
            fault = first_taking(faults, seg, step > 0, t_s + hop)
            if fault is not None:
                if trace is not None:
                    trace.packet(sock, seg, sent_s, step > 0, "fault", t_s + hop, fault.label)
                fault.take(self, seg, q, step, t_s + hop)
                return False
        receiver = self.b if step > 0 else self.a
        assert receiver is not None
        if trace is not None:
            trace.packet(sock, seg, sent_s, step > 0, "delivered", t_s + hop, "")
        # a closing socket's ACKs are real events: they move it through its close (close.py)
        if kind == ACK and receiver.state == ESTABLISHED:
            if self.sched.lazy_acks:
                ack_later(receiver, t_s + hop, seg)  # applied when the receiver next acts (no event)
            else:
                self.sched.deliver_ack_at(t_s + hop, seg, receiver)
        else:
            self.sched.deliver_at(t_s + hop, seg, receiver)
        return True

    def round_trip_end(self, t_s: float) -> float:
        """When the answer to a segment sent at ``t_s`` gets back: the same float additions, hop by
        hop, as the segment and the answer make in ``__call__``."""
        for _ in range(2 * (len(self.mbs) + 1)):
            t_s += self.hop_s
        return t_s

    def announce_expiry(self, index: int, kind: int, origin: str, t_s: float) -> None:
        """``on_expiry`` rst_both / fin_both: the device tells both ends at ``t_s``."""
        for step in (1, -1):
            seg = Seg(kind, 0, 0)
            seg.origin = origin
            self(None, seg, index + 1, step, t_s)

    def both_open_at(self, t_s: float) -> bool:
        """Did both endpoints still hold the connection open at ``t_s``?"""
        for sock in (self.a, self.b):
            if sock is None or (sock.closed_at_s is not None and sock.closed_at_s <= t_s):
                return False
        return True

    def finish(self, end_s: float) -> None:
        """End of run: settle lazy expiries."""
        for mb, flow in zip(self.mbs, self.flows, strict=False):
            mb.finish(flow, end_s)

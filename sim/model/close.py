"""Closing a connection: FIN and its ACK, FIN retransmission, orphans, FIN_WAIT2, TIME_WAIT and
CLOSE_WAIT (kernel-lifecycle.md R46–R52). Module functions of a ``TcpSocket``.

The detailed close state lives in a ``Closing`` made when the socket starts closing, so an open
connection carries one empty slot and nothing more. The kernel-level ``state`` of a socket whose
application has closed it stays ``FIN_WAIT`` until it is gone (``CLOSED``).

FIN_WAIT2's ``tcp_fin_timeout`` (R48) and TIME_WAIT's 60 s (R49) end at a known time and do nothing
but end: they are deadlines, applied when a segment reaches the socket or when the run ends, never
events. Their ends are nominal (no timer-wheel lateness).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

from sim.facts.kernel import TCP_TIMEWAIT_LEN_S
from sim.model.segment import ACK, DATA, ESTABLISHED, FIN, Seg

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket

class _FinMark:
    """The FIN's place in ``unacked``: it occupies one sequence number like a message (R46)."""

    __slots__ = ()


FIN_MARK: Final = _FinMark()

#: close states as the records spell them (docs/outputs.md)
FIN_WAIT1: Final = "fin_wait1"
FIN_WAIT2: Final = "fin_wait2"
CLOSING: Final = "closing"
TIME_WAIT: Final = "time_wait"
CLOSE_WAIT: Final = "close_wait"
LAST_ACK: Final = "last_ack"
CLOSED_STATE: Final = "closed"


class Closing:
    """How far a socket got through its close: the state, since when, the deadline that ends it
    (FIN_WAIT2, TIME_WAIT), the seconds spent in FIN_WAIT2 and TIME_WAIT, FINs sent."""

    __slots__ = ("state", "since_s", "deadline_s", "fw2_s", "tw_s", "fins", "fin_rtx", "orphan_died")

    def __init__(self, state: str, now_s: float) -> None:
        self.state = state
        self.since_s = now_s
        self.deadline_s = math.inf
        self.fw2_s = 0.0
        self.tw_s = 0.0
        #: FINs sent, retransmissions (TLP and RTO) included, and those retransmissions alone
        self.fins = 0
        self.fin_rtx = 0
        #: the orphan gave up retransmitting (R47)
        self.orphan_died = False

    def enter(self, state: str, t_s: float, lasts_s: float = math.inf) -> None:
        """Move to ``state`` at ``t_s``; it ends by itself ``lasts_s`` later (R48, R49)."""
        if self.state == FIN_WAIT2:
            self.fw2_s += t_s - self.since_s
        elif self.state == TIME_WAIT:
            self.tw_s += t_s - self.since_s
        self.state = state
        self.since_s = t_s
        self.deadline_s = t_s + lasts_s

    def at(self, end_s: float) -> Closing:
        """Apply a deadline due by ``end_s`` (the end of the run)."""
        if self.deadline_s <= end_s:
            self.enter(CLOSED_STATE, self.deadline_s)
        elif self.state in (FIN_WAIT2, TIME_WAIT):
            self.enter(self.state, end_s, self.deadline_s - end_s)
        return self


def fin_time_s(sock: TcpSocket) -> float:
    """tcp_fin_time(): tcp_fin_timeout, but at least 3.5 RTO (R48)."""
    return max(float(sock.host.sysctl["net.ipv4.tcp_fin_timeout"]), 3.5 * sock.rto)


def send_fin(sock: TcpSocket) -> None:
    """The application closed an established socket: FIN, retransmitted like data by the loss probe
    and then the RTO (R46). The socket is an orphan from now on (R47); its keepalive timer is off
    (R52)."""
    now = sock.sched.now_s
    info = sock.closing
    if info is None:
        sock.closing = info = Closing(FIN_WAIT1, now)
    else:  # CLOSE_WAIT: the peer's FIN came first
        info.enter(LAST_ACK, now)
    sock.kt_virtual_s = None
    if sock.kt is not None:
        sock.kt.clear()
    info.fins += 1
    sock.send_new(FIN, FIN_MARK, None)  # R46: retransmitted like data, by the loss probe, then the RTO


def fin_acked(sock: TcpSocket, at_s: float) -> None:
    """Everything we sent, our FIN included, is acknowledged at ``at_s``."""
    info = sock.closing
    assert info is not None
    state = info.state
    if state == FIN_WAIT1:  # R48: an orphan waits tcp_fin_timeout for the peer's FIN
        info.enter(FIN_WAIT2, at_s, fin_time_s(sock))
    elif state == CLOSING:  # R49
        info.enter(TIME_WAIT, at_s, TCP_TIMEWAIT_LEN_S)
    elif state == LAST_ACK:
        info.enter(CLOSED_STATE, at_s)
        sock._finish()


def fin_received(sock: TcpSocket, seg: Seg) -> None:
    """A FIN arrives (after ``_accept`` took its ACK)."""
    host_fin = seg.origin == "host"
    if host_fin:
        if seg.seq != sock.rcv_nxt:  # a retransmitted FIN we already have (TIME_WAIT): ACK it again
            sock._dupack(False)
            return
        sock.rcv_nxt += 1
        sock.tx(sock, Seg(ACK, sock.snd_nxt, sock.rcv_nxt))
    now = sock.sched.now_s
    if sock.state == ESTABLISHED:
        # R51: CLOSE_WAIT until the application closes (every application here closes at once)
        sock.closing = Closing(CLOSE_WAIT, now)
        sock.owner.on_peer_fin(sock, seg)
        return
    info = sock.closing
    if not host_fin or info is None:  # a middlebox's FIN to a closing socket (fin_both) ends it
        sock._finish()
        return
    if info.state == FIN_WAIT1:  # simultaneous close: our FIN is not acknowledged yet
        info.enter(CLOSING, now)
    elif info.state == FIN_WAIT2:  # R49: the side that closed first waits 60 s
        info.enter(TIME_WAIT, now, TCP_TIMEWAIT_LEN_S)


def deadline_passed(sock: TcpSocket) -> None:
    """FIN_WAIT2's or TIME_WAIT's time is up: the socket is gone (a segment for it now gets an RST,
    R50)."""
    info = sock.closing
    assert info is not None
    info.enter(CLOSED_STATE, info.deadline_s)
    sock._finish()


def orphan_died(sock: TcpSocket) -> None:
    """R47: the orphan's retransmissions ran out; no RST is sent, and no application hears of it."""
    info = sock.closing
    assert info is not None
    info.orphan_died = True
    info.enter(CLOSED_STATE, sock.sched.now_s)
    sock._finish()


def retransmit_segment(sock: TcpSocket, seq: int, payload: object) -> Seg:
    """The segment that retransmits ``payload`` at ``seq``: data, or our FIN (R46)."""
    if payload is FIN_MARK:
        info = sock.closing
        assert info is not None
        info.fins += 1
        info.fin_rtx += 1
        return Seg(FIN, seq, sock.rcv_nxt)
    return Seg(DATA, seq, sock.rcv_nxt, payload)


def close_columns(sock: TcpSocket, end_s: float) -> tuple[str, float, float, int, int, bool]:
    """(close state, seconds in FIN_WAIT2, seconds in TIME_WAIT, FINs sent, FIN retransmissions,
    orphan died) of one socket at the end of the run."""
    info = sock.closing
    if info is None:
        state = "established" if sock.state <= ESTABLISHED else CLOSED_STATE
        return state, 0.0, 0.0, 0, 0, False
    info.at(end_s)
    return info.state, info.fw2_s, info.tw_s, info.fins, info.fin_rtx, info.orphan_died


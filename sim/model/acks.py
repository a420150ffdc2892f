"""Lazy pure ACKs (``Shortcuts.lazy_acks``, docs/model.md): a pure ACK on its way to an established
socket is not an event. It only changes the bookkeeping of R10 (rcv_tstamp, probes_out, snd_una),
which nothing reads until the socket next acts, so it is applied then, at its own arrival time.

The order this keeps, in both engines: pure ACKs that arrive at time t are applied before anything
else the socket does at t (``Scheduler.deliver_ack_at`` orders the real ones so). Module functions of
a ``TcpSocket``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.model.segment import ACK, Seg

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket


def ack_later(sock: TcpSocket, arrival_s: float, seg: Seg) -> None:
    """A pure ACK will arrive at ``arrival_s``: keep it until the socket next acts (``settle``). If
    the socket closes first, the ACKs still on their way are delivered for real
    (``deliver_pending``)."""
    pending = sock.pending_acks
    if pending is None:
        sock.pending_acks = [arrival_s, float(seg.ack)]
    else:
        pending.append(arrival_s)
        pending.append(float(seg.ack))


def settle(sock: TcpSocket) -> None:
    """Apply the pure ACKs that have arrived by now, in arrival order."""
    pending = sock.pending_acks
    if not pending:
        return
    # ACK numbers only grow along a FIFO path, so applying the latest ACK that has arrived leaves
    # R10's state exactly as applying each in turn would. (A virtual keepalive expiry between two of
    # them would need the last one before it; but only the probe's own answer can arrive in that
    # interval without the socket acting, and the expiry's re-arm already counts it.)
    now = sock.sched.now_s
    n = len(pending)
    if pending[n - 2] <= now:  # all of them have arrived (the usual case)
        sock.pending_acks = None
        sock._accept(int(pending[n - 1]), pending[n - 2])
        return
    i = 0
    while pending[i] <= now:
        i += 2
    if i:
        sock._accept(int(pending[i - 1]), pending[i - 2])
        del pending[:i]


def deliver_pending(sock: TcpSocket) -> None:
    """The socket closes with pure ACKs still on their way: they are delivered for real, to meet a
    closed socket (which answers each with an RST, R23), as they would without the shortcut."""
    pending = sock.pending_acks
    if pending:
        sock.pending_acks = None
        sched = sock.sched
        for i in range(0, len(pending), 2):
            sched.deliver_ack_at(pending[i], Seg(ACK, 0, int(pending[i + 1])), sock)

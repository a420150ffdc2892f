"""The keepalive timer of a socket: tcp_keepalive_timer() (kernel-keepalive.md R14–R22), and the
virtual expiry after an answered probe (``Shortcuts.virtual_keepalive_expiry``, docs/model.md).

Module functions of a ``TcpSocket`` (compiled, they are direct calls on its native fields).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.model.acks import settle
from sim.model.segment import CLOSED, ETIMEDOUT, PROBE, RST, SYN_SENT, Seg

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket


def keepalive_fired(sock: TcpSocket) -> None:
    """tcp_keepalive_timer() (R14–R19)."""
    # This is a real expiry, at or after any virtual one: that one is history. The only pure ACK
    # that can still be pending from before it is the probe answer its outcome assumed.
    sock.kt_virtual_s = None
    if sock.pending_acks:
        settle(sock)
    opts = sock.opts
    if not opts.keepalive or sock.state in (CLOSED, SYN_SENT):  # R14
        return
    clock = sock.clock
    idle = sock.keepidle()
    if sock.snd_nxt != sock.snd_una:  # R15: data outstanding, the RTO governs
        sock._arm(True, idle)
        return
    elapsed = sock._elapsed(clock.ticks(sock.sched.now_s))
    if not clock.elapsed_at_least(elapsed, idle):  # R16: lazy re-arm for the remainder
        sock._arm(True, idle - elapsed)
        return
    u_ms = opts.user_timeout_ms
    if u_ms:
        kill = sock.probes_out > 0 and clock.elapsed_at_least(elapsed, clock.dur_ceil(u_ms / 1000.0))
    else:
        kill = sock.probes_out >= sock.keepcnt()  # R17 (and R4 when the count is 0)
    if kill:
        sock.tx(sock, Seg(RST, sock.snd_nxt, sock.rcv_nxt))  # R19: RST|ACK, then ETIMEDOUT
        sock._die(ETIMEDOUT, "keepalive", None)  # sk_err_soft is only set by ICMP, not modelled
        return
    sock.probes_out += 1  # R18, R21: zero-payload ACK with seq = snd_una - 1
    sock.probes_sent += 1
    probe = Seg(PROBE, sock.snd_una - 1, sock.rcv_nxt)
    probe.src = sock
    if sock.tx(sock, probe) and sock.sched.virtual_expiry:  # only a Path reports delivery
        defer_after_probe(sock, idle, sock.tx.round_trip_end(sock.sched.now_s))
    else:
        sock._arm(True, sock.keepintvl())


def defer_after_probe(sock: TcpSocket, idle: float, answer_s: float) -> None:
    """Arm the keepalive timer after a probe that reached the peer (R18: now + TCP_KEEPINTVL).

    The peer answers with a dupACK that arrives at ``answer_s`` and, being accepted (R10), restarts
    the idle count; the expiry at E = now + interval then only re-arms for the rest of the idle time
    (R16), to E'. Both are known now, so the timer is queued at E' and E is kept as a virtual expiry
    (``kt_virtual_s``) instead of costing an event. Until E passes, what could change E's outcome is
    caught: a later segment moves E' (``virtual_expiry_sees``); no answer (rate-limited or lost),
    data sent, a socket option or the socket closing puts the real expiry back at E
    (``expiry_needed``)."""
    clock = sock.clock
    now = sock.sched.now_s
    expiry = clock.fire_time(now, sock.keepintvl())
    # E itself would probe or kill if the answer comes too late (a round trip longer than the
    # interval) or the interval is near the idle time: then it is a real expiry.
    rearm = rearm_after_virtual(sock, expiry, idle, answer_s) if answer_s < expiry else None
    kt = sock.kt
    assert kt is not None  # called from that timer's expiry
    if rearm is None:
        kt.set(expiry)
        return
    sock.kt_virtual_s = expiry
    kt.set(rearm)


def rearm_after_virtual(sock: TcpSocket, expiry_s: float, idle: float, last_rcv_s: float) -> float | None:
    """R16 at a virtual expiry: when the timer re-arms to, or None if it would not re-arm."""
    clock = sock.clock
    expiry_j = clock.ticks(expiry_s)
    elapsed = min(sock._elapsed(expiry_j), expiry_j - clock.ticks(last_rcv_s))
    if clock.elapsed_at_least(elapsed, idle):
        return None
    return clock.fire_time(expiry_s, idle - elapsed)


def virtual_expiry_sees(sock: TcpSocket, at_s: float) -> None:
    """A segment accepted at ``at_s`` (R10): if it comes before the virtual expiry, that expiry
    re-arms later (R16), which only moves the queued deadline later (no event)."""
    expiry = sock.kt_virtual_s
    kt = sock.kt
    assert expiry is not None and kt is not None  # a virtual expiry has its re-arm queued
    if at_s > expiry:
        sock.kt_virtual_s = None  # the expiry happened before this segment
        return
    rearm = rearm_after_virtual(sock, expiry, sock.keepidle(), at_s)
    # The queued re-arm already counts the probe's answer; a segment that comes before that
    # answer moves nothing (the re-arm time only grows with the last segment's time).
    if rearm is not None and rearm > kt.due_s:
        kt.set(rearm)


def expiry_needed(sock: TcpSocket) -> None:
    """Something the virtual expiry's outcome assumed no longer holds: if it is still ahead, queue
    it for real (an earlier deadline: the later entry is then ignored)."""
    expiry = sock.kt_virtual_s
    if expiry is not None:
        sock.kt_virtual_s = None
        if sock.sched.now_s < expiry:
            assert sock.kt is not None
            sock.kt.set(expiry)

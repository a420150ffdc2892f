"""The three-way handshake's timers: SYN retransmission in SYN_SENT and SYN-ACK retransmission in
SYN_RECV (kernel-lifecycle.md R41–R45). Module functions of a ``TcpSocket``.

A handshake segment that the path delivers needs no timer event when its answer comes back one
round trip later, before the 1 s initial RTO (R41) fires. So, as for loss probes
(``Shortcuts.lazy_loss_probes``), the timer is only queued when the network reports a loss
(``TcpSocket.segment_lost``): ``tlp_sent_s`` then holds the time the timer was (virtually) armed.
An established connection never pays for its handshake timer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.facts.kernel import TCP_RTO_MAX_S, TCP_TIMEOUT_INIT_S, retries_timeout_s
from sim.model.segment import ECONNREFUSED, ETIMEDOUT, LISTEN, SYN, SYN_SENT, SYNACK, Seg

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket


def send_handshake(sock: TcpSocket, kind: int) -> None:
    """Send the first SYN (client) or SYN-ACK (server) and arm its retransmission timer with
    TCP_TIMEOUT_INIT (R41, R45); the time check of R43 counts from this first SYN."""
    now = sock.sched.now_s
    sock.syn_s = now
    sock.retrans_stamp = sock.clock.ticks(now)
    sock.rto = TCP_TIMEOUT_INIT_S
    sock.retransmits = 0
    sock.syns += 1
    delivered = sock.tx(sock, Seg(kind, 0, 0))
    clock = sock.clock
    delay = clock.dur(TCP_TIMEOUT_INIT_S)
    if (delivered and sock.sched.lazy_loss_probes
            and sock.tx.round_trip_end(now) < clock.fire_time(now, delay)):
        sock.tlp_sent_s = now  # queued only if the answer is lost (module docstring)
        sock.tlp_eid = sock.sched.reserve_id()  # the id it would have taken now
    else:  # lost, or a path so slow that the answer comes after the timer: a spurious retransmission
        sock._arm(False, delay)


def arm_handshake_timer(sock: TcpSocket, armed_s: float) -> None:
    """Queue the handshake timer that was armed at ``armed_s`` and not queued (a loss was reported)."""
    clock = sock.clock
    (sock.rt or sock._make_timer(False)).set_as(clock.fire_time(armed_s, clock.dur(TCP_TIMEOUT_INIT_S)),
                                                sock.tlp_eid)


def handshake_timer_fired(sock: TcpSocket) -> None:
    """The retransmission timer of a socket in SYN_SENT or SYN_RECV."""
    if sock.state == SYN_SENT:
        _syn_sent_timer(sock)
    else:
        _syn_recv_timer(sock)


def _syn_sent_timer(sock: TcpSocket) -> None:
    """R42, R43: retransmit the SYN, or give up with ETIMEDOUT."""
    clock = sock.clock
    sysctl = sock.host.sysctl
    now_t = clock.ticks(sock.sched.now_s)
    # R43: retry_until is TCP_SYNCNT if set, else tcp_syn_retries
    retry_until = sock.opts.syncnt or sysctl["net.ipv4.tcp_syn_retries"]
    linear = sysctl["net.ipv4.tcp_syn_linear_timeouts"]
    u_s = sock.opts.user_timeout_ms / 1000.0
    elapsed = now_t - sock.retrans_stamp
    if sock.retransmits >= retry_until + linear:  # R43 check 1: the count
        sock._die(ETIMEDOUT, "connect_timeout", None)
        return
    if sock.retransmits > 0:  # R43 check 2: the time (retransmits_timed_out needs a retransmission)
        limit_s = u_s if u_s else retries_timeout_s(retry_until, TCP_TIMEOUT_INIT_S)
        if clock.elapsed_at_least(elapsed, clock.dur_ceil(limit_s)):
            sock._die(ETIMEDOUT, "connect_timeout", None)
            return
    sock.retransmits += 1
    sock.syns += 1
    sock.tx(sock, Seg(SYN, 0, 0))
    if sock.retransmits > linear:  # R42: linear (not doubled) for the first tcp_syn_linear_timeouts
        sock.rto = min(2 * sock.rto, TCP_RTO_MAX_S)
    delay = clock.dur(sock.rto)
    if u_s:  # R43: tcp_clamp_rto_to_user_timeout
        delay = min(delay, clock.dur_ceil(u_s) - elapsed)
    sock._arm(False, max(0, delay))


def _syn_recv_timer(sock: TcpSocket) -> None:
    """R45: retransmit the SYN-ACK, 1 s doubling, up to tcp_synack_retries; then the request is
    dropped and the listener waits for a new SYN (the application never saw the connection)."""
    if sock.retransmits >= sock.host.sysctl["net.ipv4.tcp_synack_retries"]:
        sock._clear_timers()
        sock.state = LISTEN
        return
    sock.retransmits += 1
    sock.syns += 1
    sock.tx(sock, Seg(SYNACK, 0, 0))
    sock.rto = min(2 * sock.rto, TCP_RTO_MAX_S)
    sock._arm(False, sock.clock.dur(sock.rto))


def refused(sock: TcpSocket, seg: Seg) -> None:
    """R44: an RST answering our SYN ends the connect at once with ECONNREFUSED."""
    sock._die(ECONNREFUSED, "connect_refused", seg)

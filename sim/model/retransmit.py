"""The retransmission timer of a socket: the tail loss probe, then RTO expiries and the death test
(kernel-keepalive.md R28–R35). Module functions of a ``TcpSocket``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.facts.kernel import TCP_RTO_MAX_S, TCP_RTO_MIN_S, orphan_retries, retries_timeout_s
from sim.model.acks import settle
from sim.model.close import orphan_died, retransmit_segment
from sim.model.handshake import handshake_timer_fired
from sim.model.segment import CLOSED, ETIMEDOUT, FIN_WAIT, SYN_RECV

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket


def retransmit_fired(sock: TcpSocket) -> None:
    """TLP then RTO expiry (R28–R35)."""
    if sock.pending_acks:
        settle(sock)
    if sock.state <= SYN_RECV:  # SYN_SENT or SYN_RECV: the handshake's timer (R41–R45)
        handshake_timer_fired(sock)
        return
    if sock.state == CLOSED or not sock.unacked:
        return
    clock = sock.host.clock
    if sock.in_tlp:  # R29: the loss probe retransmits the tail and never kills
        sock.in_tlp = False
        sock.tx(sock, retransmit_segment(sock, sock.snd_nxt - 1, sock.unacked[-1]))
        sock._arm(False, clock.dur_ceil(sock.rto0))
        return
    u_s = sock.opts.user_timeout_ms / 1000.0
    now_t = clock.ticks(sock.host.now)
    if sock.retransmits > 0:  # R32: death test before retransmitting
        orphan = sock.state == FIN_WAIT  # closed by its application (kernel-lifecycle.md R47)
        sysctl = sock.host.sysctl
        retries = (orphan_retries(sysctl["net.ipv4.tcp_orphan_retries"], sock.rto) if orphan
                   else sysctl["net.ipv4.tcp_retries2"])
        limit = u_s if u_s else retries_timeout_s(retries)
        if clock.elapsed_at_least(now_t - sock.retrans_stamp, clock.dur_ceil(limit)):
            if orphan:
                orphan_died(sock)  # R47: silently, no RST, no application to tell
            else:
                sock._die(ETIMEDOUT, "retrans", None)  # R33: no RST
            return
    sock.retransmits += 1
    if sock.retransmits == 1:
        sock.retrans_stamp = now_t  # R31
    sock.tx(sock, retransmit_segment(sock, sock.snd_una, sock.unacked[0]))
    sock.rto = min(2 * sock.rto, TCP_RTO_MAX_S)  # R30
    delay = clock.dur_ceil(sock.rto)
    if u_s:  # R34: clamp to the user timeout
        delay = min(delay, clock.dur_ceil(u_s) - (now_t - sock.retrans_stamp))
    sock._arm(False, max(0, delay))



def tlp_due_s(sock: TcpSocket, sent_s: float) -> float:
    """R29: when the TLP timer armed at ``sent_s`` fires: PTO = 2*SRTT + rto_min, capped by the RTO."""
    clock = sock.clock
    pto = min(2 * sock.srtt_s + TCP_RTO_MIN_S, sock.rto0)
    return clock.fire_time(sent_s, clock.dur_ceil(pto))


def arm_tlp(sock: TcpSocket, sent_s: float) -> None:
    """Queue the TLP timer armed at ``sent_s`` (``tlp_due_s``)."""
    (sock.rt or sock._make_timer(False)).set(tlp_due_s(sock, sent_s))


def arm_deferred_tlp(sock: TcpSocket, sent_s: float) -> None:
    """Queue the TLP timer armed at ``sent_s`` and not queued then (``Shortcuts.lazy_loss_probes``),
    with the id it took then (``tlp_eid``): at equal times it runs where the real one would."""
    (sock.rt or sock._make_timer(False)).set_as(tlp_due_s(sock, sent_s), sock.tlp_eid)


"""A Linux TCP socket: options, keepalive and retransmission timers, RST handling, the receive path
(kernel-keepalive.md §13).

Usable on its own: a ``Host`` (clock + per-netns sysctls) and a ``TcpSocket`` whose ``tx``
callable hands segments to whatever network the caller provides. Rule numbers (``R17`` …) refer
to kernel-keepalive.md §13. The keepalive timer itself is in ``sim.model.keepalive``; segments and
states in ``sim.model.segment``; hosts and socket options in ``sim.model.host``.

Modelling simplifications, all documented in docs/model.md:
* sequence space is counted in messages, not bytes; every RST the model generates is exact
  (seq == rcv_nxt), so challenge ACKs (R25, in-window wrong seq) never arise;
* no reordering and no loss except at middleboxes; FIN is not retransmitted;
* the socket is never "owned by user" (R13) and transmits never hit local congestion (R18 > 0).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sim.facts.kernel import TCP_INVALID_RATELIMIT_S, check_keepalive_option
from sim.model.acks import deliver_pending, settle
from sim.model.clock import LazyTimer
from sim.model.close import CLOSED_STATE, Closing, deadline_passed, fin_acked, fin_received, send_fin
from sim.model.handshake import arm_handshake_timer, refused, send_handshake
from sim.model.host import NO_OPTS, Host, SocketOwner, initial_rto_s
from sim.model.keepalive import expiry_needed, keepalive_fired, virtual_expiry_sees
from sim.model.retransmit import arm_deferred_tlp, arm_tlp, retransmit_fired, tlp_due_s
from sim.model.segment import (
    ACK,
    CLOSED,
    DATA,
    ECONNRESET,
    ESTABLISHED,
    FIN,
    FIN_WAIT,
    LISTEN,
    PROBE,
    RST,
    SYN,
    SYN_RECV,
    SYN_SENT,
    SYNACK,
    Seg,
)


class TcpSocket:
    """One TCP endpoint with Linux keepalive and retransmission timers (§13)."""

    __slots__ = (
        "host", "owner", "tx", "state",
        "opts",
        "lrcv_s", "rcv_ts_s", "probes_out", "kt_virtual_s",
        "snd_una", "snd_nxt", "rcv_nxt", "unacked",
        "srtt_s", "rto0", "rto", "retransmits", "retrans_stamp", "in_tlp",
        "kt", "rt", "tlp_sent_s", "tlp_eid", "last_dupack_j",
        "probes_sent", "error", "closed_at_s", "tag",
        "sched", "clock", "pending_acks",
        "syn_s", "estab_s", "syns", "closing",
    )

    def __init__(self, host: Host, owner: SocketOwner, tx: Any) -> None:
        self.host = host
        self.sched = host.sched
        self.clock = host.clock
        self.owner = owner
        #: ``tx(sock, seg)`` puts a segment on the wire.
        self.tx = tx
        self.state = CLOSED
        #: SO_KEEPALIVE, TCP_KEEP* and TCP_USER_TIMEOUT, shared with every socket given the same
        #: options (a setsockopt replaces this socket's copy)
        self.opts = NO_OPTS
        # icsk_ack.lrcvtime (R11) and tp->rcv_tstamp (R10), kept as the simulated times of the
        # segments: the kernel stores jiffies, and since the jiffies counter is a non-decreasing
        # function of time, converting at the one place they are read (_elapsed) is the same.
        self.lrcv_s = 0.0
        self.rcv_ts_s = 0.0
        self.probes_out = 0
        #: a keepalive-timer expiry that is not queued because its outcome is known (see
        #: keepalive.defer_after_probe): the time it happens at, while it is still ahead
        self.kt_virtual_s: float | None = None
        self.snd_una = 0
        self.snd_nxt = 0
        self.rcv_nxt = 0
        #: payloads of the unacknowledged messages snd_una, snd_una + 1, ...; None when all are acked
        self.unacked: list | None = None
        self.srtt_s = 0.0
        self.rto0 = 0.0
        self.rto = 0.0
        self.retransmits = 0
        self.retrans_stamp = 0.0
        self.in_tlp = False
        # The keepalive and retransmission timers are made when first armed: most sockets of a
        # fleet never arm one, and a timer is most of a socket's memory.
        self.kt: LazyTimer | None = None
        self.rt: LazyTimer | None = None
        #: when the data in flight was sent, while its loss-probe timer is not queued (see send)
        self.tlp_sent_s: float | None = None
        #: the heap id that timer took when it was armed (Scheduler.reserve_id), for when it is queued
        self.tlp_eid = 0
        #: ticks of the last rate-limited dupACK (R22)
        self.last_dupack_j = -1e18
        self.probes_sent = 0
        self.error: str | None = None
        self.closed_at_s: float | None = None
        #: the owner's handle for this socket (the model keeps its connection record here)
        self.tag: Any = None
        #: pure ACKs on their way here, applied when the socket next looks at its state:
        #: ``[arrival_s, ack, arrival_s, ack, ...]`` in arrival order, None when there are none; the
        #: ACK numbers are held as floats too (exact: they are small integers), so the list is typed
        self.pending_acks: list[float] | None = None
        #: when the first SYN (SYN-ACK) was sent and when the connection was established (-1: not yet)
        self.syn_s = -1.0
        self.estab_s = -1.0
        #: SYNs (for the accepting side, SYN-ACKs) sent, retransmissions included (R41–R45)
        self.syns = 0
        #: the close's progress (close.Closing), made when the socket starts closing
        self.closing: Closing | None = None

    # ----------------------------------------------------------------- effective values (R1)
    def keepidle(self) -> float:
        """Effective TCP_KEEPIDLE in ticks, re-read at each use (R1)."""
        return self.host.clock.dur(self.opts.idle_s or self.host.sysctl["net.ipv4.tcp_keepalive_time"])

    def keepintvl(self) -> float:
        """Effective TCP_KEEPINTVL in ticks (R1)."""
        return self.host.clock.dur(self.opts.intvl_s or self.host.sysctl["net.ipv4.tcp_keepalive_intvl"])

    def keepcnt(self) -> int:
        """Effective TCP_KEEPCNT (R1)."""
        return self.opts.count or self.host.sysctl["net.ipv4.tcp_keepalive_probes"]

    # ----------------------------------------------------------------- socket options
    def set_keepalive(self, on: bool) -> None:
        """SO_KEEPALIVE (R5, R6): arms KT at now + I on 0→1 for a connected socket."""
        if self.state in (ESTABLISHED, FIN_WAIT, SYN_RECV):
            if on and not self.opts.keepalive:
                self._arm(True, self.keepidle())
            elif not on and self.kt is not None:
                self.kt_virtual_s = None
                self.kt.clear()
        self.opts = replace(self.opts, keepalive=on)

    def set_keepidle(self, seconds: int) -> None:
        """TCP_KEEPIDLE (R3, R7): re-arms KT to now + max(0, I' − elapsed) on a live socket."""
        check_keepalive_option("TCP_KEEPIDLE", seconds)
        settle(self)
        self.opts = replace(self.opts, idle_s=seconds)
        if self.opts.keepalive and self.state in (ESTABLISHED, FIN_WAIT):
            remaining = self.keepidle() - self._elapsed(self.clock.ticks(self.sched.now_s))
            self._arm(True, max(0, remaining))

    def set_keepintvl(self, seconds: int) -> None:
        """TCP_KEEPINTVL (R3, R8): stored only; the pending timer is untouched."""
        check_keepalive_option("TCP_KEEPINTVL", seconds)
        self.opts = replace(self.opts, intvl_s=seconds)

    def set_keepcnt(self, count: int) -> None:
        """TCP_KEEPCNT (R3, R8)."""
        check_keepalive_option("TCP_KEEPCNT", count)
        self.opts = replace(self.opts, count=count)

    def set_user_timeout(self, ms: int) -> None:
        """TCP_USER_TIMEOUT in ms (R3, R8); 0 turns it off."""
        check_keepalive_option("TCP_USER_TIMEOUT", ms)
        self.opts = replace(self.opts, user_timeout_ms=ms)

    # ----------------------------------------------------------------- timers
    def _arm(self, keepalive: bool, delay_ticks: float) -> None:
        """sk_reset_timer(now + delay) on the keepalive or the retransmission timer: quantised in
        wheel mode (R40)."""
        due = self.clock.fire_time(self.sched.now_s, delay_ticks)
        if keepalive:
            self.kt_virtual_s = None  # sk_reset_timer replaces any pending expiry
            timer = self.kt or self._make_timer(True)
        else:
            timer = self.rt or self._make_timer(False)
            self.tlp_sent_s = None
        timer.set(due)

    def _make_timer(self, keepalive: bool) -> LazyTimer:
        if keepalive:
            self.kt = LazyTimer(self.sched, self, keepalive_fired, last=True)
            return self.kt
        self.rt = LazyTimer(self.sched, self, retransmit_fired)
        return self.rt

    def _clear_timers(self) -> None:
        self.kt_virtual_s = None
        if self.kt is not None:
            self.kt.clear()
        if self.rt is not None:
            self.rt.clear()
        self.tlp_sent_s = None

    def _elapsed(self, now_j: float) -> float:
        """keepalive_time_elapsed() at ``now_j`` ticks: ticks since the last received segment (§2.1)."""
        lrcv, rcv_ts = self.lrcv_s, self.rcv_ts_s
        return now_j - self.clock.ticks(lrcv if lrcv > rcv_ts else rcv_ts)

    def probe_unanswered(self) -> None:
        """The peer got our probe and did not answer it (R22 rate limit, or not established)."""
        expiry_needed(self)

    # ----------------------------------------------------------------- connection life
    def set_rtt(self, rtt_s: float) -> None:
        """Seed SRTT from the path RTT; RTO0 = SRTT + rto_min rounded up to a jiffy (R30)."""
        self.srtt_s = rtt_s
        self.rto0 = self.rto = initial_rto_s(rtt_s, self.host.clock.hz)

    def listen(self) -> None:
        """Wait for a SYN as the accepted child of a listener."""
        self.state = LISTEN

    def connect(self) -> None:
        """Active open: send SYN, retransmitted by R41–R43 until answered."""
        self.state = SYN_SENT
        send_handshake(self, SYN)

    def _establish(self) -> None:
        host = self.host
        self.state = ESTABLISHED
        self.estab_s = host.now
        # the handshake's timer is done with; data starts from the RTT-seeded RTO (R30)
        self.tlp_sent_s = None
        if self.rt is not None:
            self.rt.clear()
        self.rto = self.rto0
        self.retransmits = 0
        self.lrcv_s = self.rcv_ts_s = host.now  # R6: lrcvtime = t_est
        if self.opts.keepalive:
            self._arm(True, self.keepidle())  # R6
        self.owner.on_established(self)

    def accept_syn(self) -> None:
        """Passive open: a SYN reached this (child) socket; answer SYN-ACK (retransmitted by R45)."""
        self.state = SYN_RECV
        send_handshake(self, SYNACK)

    def send(self, payload: Any) -> None:
        """Write one application message; arms the loss-probe timer if nothing was in flight."""
        if self.state != ESTABLISHED:
            return
        if self.pending_acks:
            settle(self)
        if self.kt_virtual_s is not None:  # data in flight at the expiry would change it (R15)
            expiry_needed(self)
        self.send_new(DATA, payload, payload)

    def send_new(self, kind: int, queued: Any, payload: Any) -> None:
        """Send the next sequence number, a message (DATA) or our FIN (R46), kept as ``queued`` until
        it is acknowledged; the first in flight arms the loss probe."""
        seq = self.snd_nxt
        self.snd_nxt += 1
        unacked = self.unacked
        if unacked is None:
            self.unacked = unacked = [queued]
        else:
            unacked.append(queued)
        delivered = self.tx(self, Seg(kind, seq, self.rcv_nxt, payload))
        now = self.sched.now_s
        sent = self.tlp_sent_s
        if sent is not None and (not delivered or self.tx.round_trip_end(now) >= tlp_due_s(self, sent)):
            # More data behind the first: the loss probe would find this segment unacknowledged if
            # its ACK comes at or after the probe's deadline, so that timer must be real.
            self.tlp_sent_s = None
            arm_deferred_tlp(self, sent)
        if len(unacked) == 1:
            # R29: the first timer after sending is the TLP.
            self.in_tlp = True
            self.retransmits = 0
            if delivered and self.sched.lazy_loss_probes:
                # The peer's kernel ACKs on arrival, one RTT < PTO from now; if that ACK is lost on
                # the way back the network queues this timer (segment_lost). Either way the TLP fires
                # exactly when the kernel's would, without an event per request that does nothing.
                self.tlp_sent_s = now
                self.tlp_eid = self.sched.reserve_id()  # the id it would have taken now
            else:
                arm_tlp(self, now)

    def segment_lost(self) -> None:
        """The network dropped a segment addressed to this socket (perhaps a probe's answer):
        deferred timers must run."""
        expiry_needed(self)
        sent = self.tlp_sent_s
        if sent is not None:
            self.tlp_sent_s = None
            if self.state <= SYN_RECV:  # the handshake's answer was lost: its timer must run
                arm_handshake_timer(self, sent)
            else:
                arm_deferred_tlp(self, sent)

    def close(self) -> None:
        """Application close: FIN to the peer, retransmitted like data (kernel-lifecycle.md R46). The
        socket is an orphan from now on: its death reaches no application (R47)."""
        settle(self)
        expiry_needed(self)
        if self.state == ESTABLISHED:
            self.state = FIN_WAIT
            send_fin(self)
            self.closed_at_s = self.host.now
        elif self.state in (SYN_SENT, SYN_RECV):
            self._finish()
            self.closed_at_s = self.host.now

    def _finish(self) -> None:
        closing = self.closing
        if closing is not None and closing.state != CLOSED_STATE:
            closing.enter(CLOSED_STATE, self.sched.now_s)
        self.state = CLOSED
        self._clear_timers()
        self.unacked = None
        deliver_pending(self)  # pure ACKs still on their way will meet a closed socket

    def _die(self, errno: str, cause: str, seg: Seg | None) -> None:
        """tcp_write_err() / tcp_reset(): report once, purge, close (R19, R26, R33)."""
        settle(self)
        self._finish()
        self.error = errno
        self.closed_at_s = self.host.now
        self.owner.on_error(self, errno, cause, seg)

    # ----------------------------------------------------------------- receive path
    def _accept(self, ack: int, at_s: float) -> None:
        """R10: an accepted segment with snd_una <= ack <= snd_nxt, arrived at ``at_s``, refreshes
        rcv_tstamp and zeroes probes_out and the soft error; new ACKs end the retransmission
        episode (R31)."""
        self.rcv_ts_s = at_s
        self.probes_out = 0
        if self.kt_virtual_s is not None:
            virtual_expiry_sees(self, at_s)
        if ack > self.snd_una:
            unacked = self.unacked
            assert unacked is not None  # ack <= snd_nxt: there is data in flight
            newly_acked = ack - self.snd_una
            self.snd_una = ack
            if newly_acked < len(unacked):
                del unacked[:newly_acked]
            else:  # everything in flight is acknowledged (the usual case)
                self.unacked = None
                self.retransmits = 0
                self.rto = self.rto0
                self.in_tlp = False
                self.tlp_sent_s = None
                if self.rt is not None:
                    self.rt.clear()
                if self.state == FIN_WAIT:  # our FIN is acknowledged too (R48, R49)
                    fin_acked(self, at_s)

    def receive(self, seg: Seg) -> None:
        """A segment arrives from the network."""
        if self.pending_acks:
            settle(self)
        state = self.state
        kind = seg.kind
        if state == FIN_WAIT:
            closing = self.closing
            if closing is not None and self.sched.now_s >= closing.deadline_s:
                deadline_passed(self)  # FIN_WAIT2 or TIME_WAIT ran out before this segment (R48, R49)
                state = CLOSED
        if state == LISTEN:
            if kind == SYN:  # the child of a listening socket; its options were inherited (R6)
                self.accept_syn()
                return
            state = CLOSED
        if state == CLOSED:
            # R23: a host without the socket answers a non-RST segment with an exact RST.
            if kind != RST and kind != SYN:
                self.tx(self, Seg(RST, seg.ack, 0))
            return
        if kind == RST:
            if state == FIN_WAIT:
                self._finish()
                return
            if state == SYN_SENT:
                refused(self, seg)  # R44
                return
            if state == SYN_RECV:  # a reset request socket is dropped; the listener stays
                self._clear_timers()
                self.state = LISTEN
                return
            self._die(ECONNRESET, "rst", seg)  # R25, R26: every RST the model builds is exact
            return
        if state == SYN_SENT:
            if kind == SYNACK:
                self.tx(self, Seg(ACK, self.snd_nxt, self.rcv_nxt))
                self._establish()
            return
        if state == SYN_RECV:
            if kind == SYN:  # the client retransmitted its SYN: answer it again (inet_rtx_syn_ack)
                self.syns += 1
                self.tx(self, Seg(SYNACK, 0, 0))
                return
            self._establish()
        elif kind == SYNACK or kind == SYN:
            # our ACK of the handshake was lost and the peer retransmitted: answer with an ACK (R22)
            self._dupack(False)
            return
        if kind == PROBE:
            # R12, R22: seq = snd_una - 1 fails tcp_sequence(): answered with a dupACK and dropped
            # without touching rcv_tstamp or probes_out, so a probe never refreshes its receiver.
            if not self._dupack(True) and seg.src is not None:
                seg.src.probe_unanswered()
            return
        if kind == DATA and state == FIN_WAIT and seg.seq >= self.rcv_nxt:
            # New data for a socket the application has closed: Linux answers with RST
            # (tcp_rcv_state_process, TCPAbortOnData). This is the keep-alive race of a server that
            # closes an idle connection while the client's next request is on its way.
            rst = Seg(RST, self.snd_nxt, seg.seq)
            rst.provoked_by = DATA
            self.tx(self, rst)
            self._finish()
            return
        now = self.sched.now_s
        self._accept(seg.ack, now)
        if kind == DATA:
            if seg.seq == self.rcv_nxt:
                self.rcv_nxt += 1
                self.lrcv_s = now  # R11
                self.tx(self, Seg(ACK, self.snd_nxt, self.rcv_nxt))  # quick ACK (DESIGN §2)
                self.owner.on_data(self, seg.payload)
            else:
                self._dupack(False)
        elif kind == FIN:
            fin_received(self, seg)

    def _dupack(self, probe: bool) -> bool:
        """Answer an out-of-window segment with a duplicate ACK, rate limited (R22); False if the
        rate limit held it back."""
        clock = self.clock
        now_j = clock.ticks(self.sched.now_s)
        if now_j - self.last_dupack_j < clock.dur(TCP_INVALID_RATELIMIT_S):
            return False
        self.last_dupack_j = now_j
        ack = Seg(ACK, self.snd_nxt, self.rcv_nxt)
        ack.probe_ack = probe
        self.tx(self, ack)
        return True

    # ----------------------------------------------------------------- observation
    def is_open(self) -> bool:
        """The application still believes the connection is usable."""
        return self.state in (ESTABLISHED, SYN_RECV, SYN_SENT)

"""A Linux TCP socket's timers: keepalive, retransmission, RST handling (kernel-keepalive.md §13).

Usable on its own: a ``Host`` (clock + per-netns sysctls) and a ``TcpSocket`` whose ``tx``
callable hands segments to whatever network the caller provides. Rule numbers (``R17`` …) refer
to kernel-keepalive.md §13.

Modelling simplifications, all documented in docs/model.md:
* sequence space is counted in messages, not bytes; every RST the model generates is exact
  (seq == rcv_nxt), so challenge ACKs (R25, in-window wrong seq) never arise;
* no reordering and no loss except at middleboxes; FIN is not retransmitted;
* the socket is never "owned by user" (R13) and transmits never hit local congestion (R18 > 0).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from sim.facts.kernel import (
    DEFAULT_SYSCTL,
    TCP_INVALID_RATELIMIT_S,
    TCP_RTO_MAX_S,
    TCP_RTO_MIN_S,
    check_keepalive_option,
    retries_timeout_s,
)
from sim.model.clock import Clock, LazyTimer, Scheduler

# Constants are ``Final`` so that the compiled core inlines them (a module global is a dict lookup).
# Segment kinds.
SYN: Final = 0
SYNACK: Final = 1
ACK: Final = 2
DATA: Final = 3
PROBE: Final = 4
FIN: Final = 5
RST: Final = 6
KIND_NAMES: Final = ("SYN", "SYNACK", "ACK", "DATA", "PROBE", "FIN", "RST")

# Socket states.
SYN_SENT: Final = 0
SYN_RECV: Final = 1
ESTABLISHED: Final = 2
FIN_WAIT: Final = 3
CLOSED: Final = 4
LISTEN: Final = 5

# Errors the application can see (errno names) and how the socket learnt of them.
ECONNRESET: Final = "ECONNRESET"
ETIMEDOUT: Final = "ETIMEDOUT"

#: Skip the event of a keepalive expiry whose outcome is known in advance (see
#: TcpSocket._defer_after_probe). Off, every expiry is an event; tests check both agree.
DEFER_ANSWERED_PROBE_EXPIRY = True


@functools.lru_cache(maxsize=64)
def initial_rto_s(rtt_s: float, hz: int) -> float:
    """RTO0 = SRTT + rto_min rounded up to a jiffy (R30); cached, so a fleet's sockets share it."""
    return math.ceil((rtt_s + TCP_RTO_MIN_S) * hz - 1e-6) / hz


@dataclass(frozen=True, slots=True)
class SockOpts:
    """Socket options an application sets: SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT in seconds and
    count (0 = use the netns sysctl, R1), TCP_USER_TIMEOUT in ms (0 = off)."""

    keepalive: bool = False
    idle_s: int = 0
    intvl_s: int = 0
    count: int = 0
    user_timeout_ms: int = 0


NO_OPTS = SockOpts()


class Seg:
    """One TCP segment. ``seq``/``ack`` count messages, not bytes."""

    __slots__ = ("kind", "seq", "ack", "payload", "probe_ack", "origin", "provoked_by", "dst", "src")

    #: the socket it is on its way to, set when it is queued (``Scheduler.deliver_at``)
    dst: TcpSocket

    def __init__(self, kind: int, seq: int = 0, ack: int = 0, payload: Any = None) -> None:
        self.kind = kind
        self.seq = seq
        self.ack = ack
        self.payload = payload
        self.probe_ack = False
        #: who built the segment: "host" or a middlebox name (LB-generated RSTs / keepalives).
        self.origin = "host"
        #: for an RST a middlebox sent back: the kind of segment that provoked it.
        self.provoked_by = -1
        #: for a keepalive probe: the socket that sent it (told when the probe goes unanswered)
        self.src: TcpSocket | None = None


class Host:
    """A network namespace: its clock (HZ, timer mode, wheel phase) and its sysctls (R1, R2, R39)."""

    __slots__ = ("name", "sched", "clock", "sysctl")

    def __init__(self, name: str, sched: Scheduler, clock: Clock, sysctl: dict[str, int] | None = None) -> None:
        self.name = name
        self.sched = sched
        self.clock = clock
        self.sysctl = dict(DEFAULT_SYSCTL)
        if sysctl:
            self.sysctl.update(sysctl)

    @property
    def now(self) -> float:
        return self.sched.now_s


class SocketOwner(Protocol):
    """What a socket tells its application."""

    def on_established(self, sock: TcpSocket) -> None: ...
    def on_data(self, sock: TcpSocket, payload: Any) -> None: ...
    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None: ...
    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None: ...


class TcpSocket:
    """One TCP endpoint with Linux keepalive and retransmission timers (§13)."""

    __slots__ = (
        "host", "owner", "tx", "state",
        "opts",
        "lrcv_s", "rcv_ts_s", "probes_out", "kt_virtual_s",
        "snd_una", "snd_nxt", "rcv_nxt", "unacked",
        "srtt_s", "rto0", "rto", "retransmits", "retrans_stamp", "in_tlp",
        "kt", "rt", "tlp_sent_s", "last_dupack_j",
        "probes_sent", "error", "closed_at_s", "tag",
        "sched", "clock", "pending_acks",
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
        #: _defer_after_probe): the time it happens at, while it is still ahead
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
        self._settle()
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
            self.kt = LazyTimer(self.sched, self, TcpSocket._keepalive_timer)
            return self.kt
        self.rt = LazyTimer(self.sched, self, TcpSocket._retransmit_timer)
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

    def _keepalive_timer(self) -> None:
        """tcp_keepalive_timer() (R14–R19)."""
        # This is a real expiry, at or after any virtual one: that one is history. The only pure ACK
        # that can still be pending from before it is the probe answer its outcome assumed.
        self.kt_virtual_s = None
        if self.pending_acks:
            self._settle()
        opts = self.opts
        if not opts.keepalive or self.state in (CLOSED, SYN_SENT):  # R14
            return
        clock = self.clock
        idle = self.keepidle()
        if self.snd_nxt != self.snd_una:  # R15: data outstanding, the RTO governs
            self._arm(True, idle)
            return
        elapsed = self._elapsed(clock.ticks(self.sched.now_s))
        if not clock.elapsed_at_least(elapsed, idle):  # R16: lazy re-arm for the remainder
            self._arm(True, idle - elapsed)
            return
        u_ms = opts.user_timeout_ms
        if u_ms:
            kill = self.probes_out > 0 and clock.elapsed_at_least(elapsed, clock.dur_ceil(u_ms / 1000.0))
        else:
            kill = self.probes_out >= self.keepcnt()  # R17 (and R4 when the count is 0)
        if kill:
            self.tx(self, Seg(RST, self.snd_nxt, self.rcv_nxt))  # R19: RST|ACK, then ETIMEDOUT
            self._die(ETIMEDOUT, "keepalive", None)  # sk_err_soft is only set by ICMP, not modelled
            return
        self.probes_out += 1  # R18, R21: zero-payload ACK with seq = snd_una - 1
        self.probes_sent += 1
        probe = Seg(PROBE, self.snd_una - 1, self.rcv_nxt)
        probe.src = self
        if self.tx(self, probe) and DEFER_ANSWERED_PROBE_EXPIRY:  # only a Path reports delivery
            self._defer_after_probe(idle, self.tx.round_trip_end(self.sched.now_s))
        else:
            self._arm(True, self.keepintvl())

    def _defer_after_probe(self, idle: float, answer_s: float) -> None:
        """Arm the keepalive timer after a probe that reached the peer (R18: now + TCP_KEEPINTVL).

        The peer answers with a dupACK that arrives at ``answer_s`` and, being accepted (R10),
        restarts the idle count; the expiry at E = now + interval then only re-arms for the rest of
        the idle time (R16), to E'. Both are known now, so the timer is queued at E' and E is kept
        as a virtual expiry (``kt_virtual_s``) instead of costing an event. Until E passes, what
        could change E's outcome is caught: a later segment moves E' (``_virtual_expiry_sees``); no
        answer (rate-limited or lost), data sent, a socket option or the socket closing puts the
        real expiry back at E (``_expiry_needed``)."""
        clock = self.clock
        now = self.sched.now_s
        expiry = clock.fire_time(now, self.keepintvl())
        # E itself would probe or kill if the answer comes too late (a round trip longer than the
        # interval) or the interval is near the idle time: then it is a real expiry.
        rearm = self._rearm_after_virtual(expiry, idle, answer_s) if answer_s < expiry else None
        kt = self.kt
        assert kt is not None  # called from that timer's expiry
        if rearm is None:
            kt.set(expiry)
            return
        self.kt_virtual_s = expiry
        kt.set(rearm)

    def _rearm_after_virtual(self, expiry_s: float, idle: float, last_rcv_s: float) -> float | None:
        """R16 at a virtual expiry: when the timer re-arms to, or None if it would not re-arm."""
        clock = self.clock
        expiry_j = clock.ticks(expiry_s)
        elapsed = min(self._elapsed(expiry_j), expiry_j - clock.ticks(last_rcv_s))
        if clock.elapsed_at_least(elapsed, idle):
            return None
        return clock.fire_time(expiry_s, idle - elapsed)

    def _virtual_expiry_sees(self, at_s: float) -> None:
        """A segment accepted at ``at_s`` (R10): if it comes before the virtual expiry, that expiry
        re-arms later (R16), which only moves the queued deadline later (no event)."""
        expiry = self.kt_virtual_s
        kt = self.kt
        assert expiry is not None and kt is not None  # a virtual expiry has its re-arm queued
        if at_s > expiry:
            self.kt_virtual_s = None  # the expiry happened before this segment
            return
        rearm = self._rearm_after_virtual(expiry, self.keepidle(), at_s)
        # The queued re-arm already counts the probe's answer; a segment that comes before that
        # answer moves nothing (the re-arm time only grows with the last segment's time).
        if rearm is not None and rearm > kt.due_s:
            kt.set(rearm)

    def _expiry_needed(self) -> None:
        """Something the virtual expiry's outcome assumed no longer holds: if it is still ahead,
        queue it for real (an earlier deadline: the later entry is then ignored)."""
        expiry = self.kt_virtual_s
        if expiry is not None:
            self.kt_virtual_s = None
            if self.sched.now_s < expiry:
                assert self.kt is not None
                self.kt.set(expiry)

    def probe_unanswered(self) -> None:
        """The peer got our probe and did not answer it (R22 rate limit, or not established)."""
        self._expiry_needed()

    def _retransmit_timer(self) -> None:
        """TLP then RTO expiry (R28–R35)."""
        if self.pending_acks:
            self._settle()
        if self.state == CLOSED or not self.unacked:
            return
        clock = self.host.clock
        if self.in_tlp:  # R29: the loss probe retransmits the tail and never kills
            self.in_tlp = False
            self.tx(self, Seg(DATA, self.snd_nxt - 1, self.rcv_nxt, self.unacked[-1]))
            self._arm(False, clock.dur_ceil(self.rto0))
            return
        u_s = self.opts.user_timeout_ms / 1000.0
        now_t = clock.ticks(self.host.now)
        if self.retransmits > 0:  # R32: death test before retransmitting
            limit = u_s if u_s else retries_timeout_s(self.host.sysctl["net.ipv4.tcp_retries2"])
            if clock.elapsed_at_least(now_t - self.retrans_stamp, clock.dur_ceil(limit)):
                self._die(ETIMEDOUT, "retrans", None)  # R33: no RST
                return
        self.retransmits += 1
        if self.retransmits == 1:
            self.retrans_stamp = now_t  # R31
        self.tx(self, Seg(DATA, self.snd_una, self.rcv_nxt, self.unacked[0]))
        self.rto = min(2 * self.rto, TCP_RTO_MAX_S)  # R30
        delay = clock.dur_ceil(self.rto)
        if u_s:  # R34: clamp to the user timeout
            delay = min(delay, clock.dur_ceil(u_s) - (now_t - self.retrans_stamp))
        self._arm(False, max(0, delay))

    # ----------------------------------------------------------------- connection life
    def set_rtt(self, rtt_s: float) -> None:
        """Seed SRTT from the path RTT; RTO0 = SRTT + rto_min rounded up to a jiffy (R30)."""
        self.srtt_s = rtt_s
        self.rto0 = self.rto = initial_rto_s(rtt_s, self.host.clock.hz)

    def listen(self) -> None:
        """Wait for a SYN as the accepted child of a listener."""
        self.state = LISTEN

    def connect(self) -> None:
        """Active open: send SYN."""
        self.state = SYN_SENT
        self.tx(self, Seg(SYN, 0, 0))

    def _establish(self) -> None:
        host = self.host
        self.state = ESTABLISHED
        self.lrcv_s = self.rcv_ts_s = host.now  # R6: lrcvtime = t_est
        if self.opts.keepalive:
            self._arm(True, self.keepidle())  # R6
        self.owner.on_established(self)

    def accept_syn(self) -> None:
        """Passive open: a SYN reached this (child) socket; answer SYN-ACK."""
        self.state = SYN_RECV
        self.tx(self, Seg(SYNACK, 0, 0))

    def send(self, payload: Any) -> None:
        """Write one application message; arms the loss-probe timer if nothing was in flight."""
        if self.state != ESTABLISHED:
            return
        if self.pending_acks:
            self._settle()
        if self.kt_virtual_s is not None:  # data in flight at the expiry would change it (R15)
            self._expiry_needed()
        seq = self.snd_nxt
        self.snd_nxt += 1
        unacked = self.unacked
        if unacked is None:
            self.unacked = unacked = [payload]
        else:
            unacked.append(payload)
        delivered = self.tx(self, Seg(DATA, seq, self.rcv_nxt, payload))
        if len(unacked) == 1:
            # R29: the first timer after sending is the TLP.
            self.in_tlp = True
            self.retransmits = 0
            if delivered:
                # The peer's kernel ACKs on arrival, one RTT < PTO from now; if that ACK is lost on
                # the way back the network queues this timer (segment_lost). Either way the TLP fires
                # exactly when the kernel's would, without an event per request that does nothing.
                self.tlp_sent_s = self.sched.now_s
            else:
                self._queue_tlp(self.sched.now_s)

    def _queue_tlp(self, sent_s: float) -> None:
        """R29: the TLP timer, armed at ``sent_s`` for PTO = 2*SRTT + rto_min, capped by the RTO."""
        clock = self.clock
        pto = min(2 * self.srtt_s + TCP_RTO_MIN_S, self.rto0)
        (self.rt or self._make_timer(False)).set(clock.fire_time(sent_s, clock.dur_ceil(pto)))

    def segment_lost(self) -> None:
        """The network dropped a segment addressed to this socket (perhaps a probe's answer):
        deferred timers must run."""
        self._expiry_needed()
        sent = self.tlp_sent_s
        if sent is not None:
            self.tlp_sent_s = None
            self._queue_tlp(sent)

    def close(self) -> None:
        """Application close: FIN to the peer (not retransmitted: see module docstring)."""
        self._settle()
        self._expiry_needed()
        if self.state == ESTABLISHED:
            self.state = FIN_WAIT
            # A closed socket runs no timers (docs/model.md): its keepalive or retransmission death
            # would reach an application that no longer holds it (the client slot took it for its
            # current connection's and opened another while that one was open).
            self._clear_timers()
            self.tx(self, Seg(FIN, self.snd_nxt, self.rcv_nxt))
            self.closed_at_s = self.host.now
        elif self.state in (SYN_SENT, SYN_RECV):
            self._finish()
            self.closed_at_s = self.host.now

    def _finish(self) -> None:
        self.state = CLOSED
        self._clear_timers()
        self.unacked = None
        # Pure ACKs still on their way only had R10 bookkeeping to update, which a closed socket no
        # longer has. (After an RST the host would answer each with an RST of its own (R23); the
        # model leaves those out. _die delivers them for real instead.)
        self.pending_acks = None

    def _die(self, errno: str, cause: str, seg: Seg | None) -> None:
        """tcp_write_err() / tcp_reset(): report once, purge, close (R19, R26, R33)."""
        self._settle()
        pending = self.pending_acks
        if pending:  # still on their way: they will meet a closed socket
            for i in range(0, len(pending), 2):
                self.sched.deliver_at(pending[i], Seg(ACK, 0, int(pending[i + 1])), self)
            self.pending_acks = None
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
            self._virtual_expiry_sees(at_s)
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

    def ack_later(self, arrival_s: float, seg: Seg) -> None:
        """A pure ACK will arrive at ``arrival_s``. A pure ACK changes only the bookkeeping of R10,
        which is read only when this socket next acts, so it is applied then (``_settle``), at its
        own arrival time, instead of costing an event. If the socket dies first, the ACKs still on
        their way are delivered for real (a closed socket answers them with RST, R23)."""
        pending = self.pending_acks
        if pending is None:
            self.pending_acks = [arrival_s, float(seg.ack)]
        else:
            pending.append(arrival_s)
            pending.append(float(seg.ack))

    def _settle(self) -> None:
        """Apply the pure ACKs that have arrived by now, in arrival order."""
        pending = self.pending_acks
        if not pending:
            return
        # ACK numbers only grow along a FIFO path, so applying the latest ACK that has arrived
        # leaves R10's state exactly as applying each in turn would.
        now = self.sched.now_s
        n = len(pending)
        if pending[n - 2] <= now:  # all of them have arrived (the usual case)
            self.pending_acks = None
            self._accept(int(pending[n - 1]), pending[n - 2])
            return
        i = 0
        while pending[i] <= now:
            i += 2
        if i:
            self._accept(int(pending[i - 1]), pending[i - 2])
            del pending[:i]

    def receive(self, seg: Seg) -> None:
        """A segment arrives from the network."""
        if self.pending_acks:
            self._settle()
        state = self.state
        kind = seg.kind
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
            self._die(ECONNRESET, "rst", seg)  # R25, R26: every RST the model builds is exact
            return
        if state == SYN_SENT:
            if kind == SYNACK:
                self.tx(self, Seg(ACK, self.snd_nxt, self.rcv_nxt))
                self._establish()
            return
        if state == SYN_RECV:
            if kind == SYN:
                return
            self._establish()
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
            if state == FIN_WAIT:
                self._finish()
            else:
                self.owner.on_peer_fin(self, seg)

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

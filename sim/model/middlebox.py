"""A pass-through L4 middlebox with an idle timer per flow (DESIGN §2, "Middlebox").

One ``Flow`` per connection. Refreshing a flow only stores ``last_seen_s``: the expiry is
computed lazily when the next packet arrives or when the run ends. An expiry event is scheduled
only when the expiry itself does something (``on_expiry`` rst_both / fin_both).
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Final

from sim.facts.names import H2_CONTROL_FRAME_BYTES, SEGMENT_HEADER_BYTES
from sim.model.clock import EPS_S, LazyTimer
from sim.model.ledger import Ledger, merge_ledgers
from sim.model.messages import GOAWAY, Msg
from sim.model.ports import PortBudget
from sim.model.segment import ACK, DATA, FIN, PROBE, RST, SYN
from sim.spec import MiddleboxSpec

#: What a middlebox does with a segment (``Middlebox.handle``).
FORWARD: Final = 0
DROP: Final = 1
BOUNCE: Final = 2


def bump(series: list[int], i: int, by: int = 1) -> None:
    """series[i] += by, growing the list as simulated time advances."""
    if i >= len(series):
        series.extend([0] * (i + 1 - len(series)))
    series[i] += by


def count_at(counts: dict[int, int], second: int) -> None:
    """counts[second] += 1: a sparse per-second count, whose memory grows with the events counted,
    not with the simulated time (a year-long run of two connections stays small)."""
    counts[second] = counts.get(second, 0) + 1


#: Capacity series have at most this many buckets: one per minute up to 14 days, coarser (whole
#: minutes) beyond, so their memory does not grow with the simulated duration.
MAX_SERIES_BUCKETS: Final = 20_160


def series_bucket_s(duration_s: float) -> float:
    """Width of a capacity-series bucket for a run of ``duration_s``: 60 s, or whole minutes."""
    minutes = max(1, -(-int(math.ceil(duration_s)) // 60))
    return 60.0 * max(1, -(-minutes // MAX_SERIES_BUCKETS))
RST_TO_SENDER: Final = "rst_to_sender"
LATE_DROP: Final = "drop"
NEW_FLOW: Final = "new_flow"


class Flow:
    """One flow-table entry's life; recreated in place on a ``new_flow`` pick-up."""

    __slots__ = (
        "mb", "path", "index", "alive", "last_seen_s", "last_data_s", "created_s",
        "first_drop_s", "drop_both_open", "min_slack_s", "at_risk_gaps", "fin_dirs", "timer",
        "alive_at_end", "proxy", "queued", "port", "ledger",
    )

    def __init__(self, mb: Middlebox, path: Any, index: int, now_s: float) -> None:
        self.mb = mb
        self.path = path
        self.index = index
        self.alive = True
        self.last_seen_s = now_s
        self.last_data_s = now_s
        self.created_s = now_s
        self.first_drop_s: float | None = None
        self.drop_both_open = False
        self.min_slack_s = float("inf")
        self.at_risk_gaps = 0
        self.fin_dirs = 0
        self.timer: LazyTimer | None = None
        self.alive_at_end: bool | None = None
        #: the terminating proxy whose two legs share this flow (None for pass-through devices)
        self.proxy: Any = None
        #: in its device's expiry queue (a device with a flow limit or a port budget only:
        #: ``Middlebox._reap``)
        self.queued = False
        #: the port budget its source port came from (sim.model.ports); -1: it holds none
        self.port = -1
        #: where the device counts this flow's packets: its connection's traffic class's ledger
        self.ledger: Ledger = mb.ledgers[path.klass]


class Middlebox:
    """Counters and behaviour of one device; flows hold the per-connection state."""

    __slots__ = (
        "spec", "sched", "timeout_s", "ledgers", "class_names", "queued_seq",
        "refresh_any", "payload_bytes",
        "leg", "bucket_s", "message_sizes", "took", "active", "flow_limit", "connects_rejected", "expiries",
        "ports",
        "storm_flows",
    )

    def __init__(self, spec: MiddleboxSpec, sched, payload_bytes: tuple[int, int] = (0, 0),
                 leg: str = "downstream", bucket_s: float = 60.0) -> None:
        self.spec = spec
        #: which leg it stands on: ``downstream`` (client side of Envoy) or ``upstream``
        self.leg = leg
        #: application bytes of a request (from the client) and of a response, for byte counts
        self.payload_bytes = payload_bytes
        #: messages may carry their own size (``Msg.size_bytes``: a run with a traffic process)
        self.message_sizes = False
        #: capacity time series (sim.model.ledger) are kept in buckets of ``bucket_s`` seconds
        #: (series_bucket_s)
        self.bucket_s = bucket_s
        #: its counters and series, one ledger per traffic class (``set_classes``), each flow counted
        #: in its class's (sim.model.ledger): one ledger in a world of one class
        self.ledgers: list[Ledger] = [Ledger()]
        self.class_names: list[str] = []
        self.sched = sched
        self.timeout_s = spec.idle_timeout_s
        self.refresh_any = spec.refreshed_by == "any_packet"
        #: entries pushed on ``expiries``: the tie-break of equal deadlines, first pushed first
        self.queued_seq = 0
        #: the fault that took the last segment given a TAKEN verdict (sim.model.faults)
        self.took: Any = None
        #: entries in the table now (silent expiries are counted out when ``_reap`` finds them)
        self.active = 0
        #: ``max_flows``, or infinity: the admission check is one comparison either way
        self.flow_limit = float(spec.max_flows) if spec.max_flows is not None else math.inf
        #: SYNs refused because the table was full
        self.connects_rejected = 0
        #: (deadline_s as last known, sequence, flow) of the silently expiring entries, kept only by a
        #: device with a limit: a full table (or spent port budget) looks here for entries whose idle
        #: timer ran out unseen
        self.expiries: list[tuple[float, int, Flow]] = []
        #: its source-port budgets (a NAT with ``ports``), or None
        self.ports: PortBudget | None = None
        if spec.ports_limit is not None:
            self.ports = PortBudget(spec.ports_limit, spec.ports_per == "client_instance", spec.ports_reuse_s)
        #: every flow made here until a storm makes the device forget them (sim.model.storm), else None
        self.storm_flows: list[Flow] | None = None

    def set_classes(self, names: list[str]) -> None:
        """A world of two or more traffic classes: one ledger each, in class order (before any flow)."""
        self.class_names = list(names)
        self.ledgers = [Ledger() for _ in names]

    # The device's counts: its ledgers' sums (tests and the run's counters read them)
    @property
    def keepalive_packets(self) -> int:
        return sum(led.keepalive_packets for led in self.ledgers)

    @property
    def ping_packets(self) -> int:
        return sum(led.ping_packets for led in self.ledgers)

    @property
    def lb_rsts(self) -> int:
        return sum(led.lb_rsts for led in self.ledgers)

    @property
    def new_flows(self) -> int:
        return sum(led.new_flows for led in self.ledgers)

    @property
    def intervals(self) -> list[tuple[float, float]]:
        return [iv for led in self.ledgers for iv in led.intervals]

    # ------------------------------------------------------------------ flow table
    def open_flow(self, path, index: int, t_s: float) -> Flow:
        """A SYN creates the entry."""
        flow = Flow(self, path, index, t_s)
        self._start(flow, t_s)
        if self.storm_flows is not None:
            self.storm_flows.append(flow)
        return flow

    def _start(self, flow: Flow, t_s: float) -> None:
        led = flow.ledger
        led.new_flows += 1
        self.active += 1
        count_at(led.new_per_s, int(t_s))
        flow.created_s = t_s
        flow.alive = True
        flow.last_seen_s = t_s
        flow.last_data_s = t_s
        ports = self.ports
        if ports is not None:  # the first SYN takes a port (admit saw one free)
            flow.port = ports.budget_of(flow.path.port_group)
            ports.take(flow.port)
        if self.spec.on_expiry != "silent":
            if flow.timer is None:
                flow.timer = LazyTimer(self.sched, flow, self._expiry_timer)
            flow.timer.set(t_s + self.timeout_s)
        elif (self.flow_limit != math.inf or ports is not None) and not flow.queued:
            flow.queued = True
            self.queued_seq += 1
            heapq.heappush(self.expiries, (t_s + self.timeout_s, self.queued_seq, flow))

    def _end(self, flow: Flow, t_s: float, closed: bool = False) -> None:
        """The device forgets ``flow`` at ``t_s``; ``closed``: by a close (FIN both ways, RST), after
        which its port is held for reuse (sim.model.ports)."""
        if not flow.alive:
            return
        flow.alive = False
        self.active -= 1
        flow.ledger.intervals.append((flow.created_s, t_s))
        if flow.port >= 0 and self.ports is not None:
            self.ports.give_back(flow.port, flow.created_s, t_s, closed)
            flow.port = -1
        if flow.timer is not None:
            flow.timer.clear()

    def expire(self, flow: Flow, at_s: float, seen_s: float | None = None) -> None:
        """The idle timer ran out at ``at_s``, lazily discovered at ``seen_s`` (a late packet or the
        end of the run): the slack of that idle gap was negative."""
        slack = self.timeout_s - ((seen_s if seen_s is not None else at_s) - flow.last_seen_s)
        if slack < flow.min_slack_s:
            flow.min_slack_s = slack
        self._lose(flow, at_s, "")

    def forget(self, flow: Flow, t_s: float) -> None:
        """A storm (drop_all, deregister) removes the entry at ``t_s``, before its idle timer ran out:
        the flow is lost as an expiry loses it (``first_drop_s``), with no idle gap to measure."""
        self._lose(flow, t_s, " (storm)")

    def _lose(self, flow: Flow, t_s: float, why: str) -> None:
        """The device forgets ``flow`` at ``t_s`` without telling either end: a silent drop."""
        self._end(flow, t_s)
        if flow.path.trace is not None:
            flow.path.trace.note(t_s, "lb", "expired", f"{self.spec.name} forgets the flow{why}", self.spec.name)
        if flow.first_drop_s is None:
            flow.first_drop_s = t_s
            flow.drop_both_open = flow.path.both_open_at(t_s)

    def _expiry_timer(self, flow: Flow) -> None:
        if not flow.alive:
            return
        deadline = flow.last_seen_s + self.timeout_s
        now = self.sched.now_s
        if deadline > now + EPS_S:
            assert flow.timer is not None  # this method is that timer's callback
            flow.timer.set(deadline)
            return
        if flow.proxy is not None:  # a proxy's own idle timeout: it closes both legs cleanly (FIN)
            flow.last_seen_s = now  # its FINs still pass its own view on their way out
            flow.proxy.idle_expired()
            self._end(flow, now, True)
            return
        self.expire(flow, deadline)
        kind = RST if self.spec.on_expiry == "rst_both" else FIN
        if kind == RST:
            flow.ledger.lb_rsts += 2
        flow.path.announce_expiry(flow.index, kind, self.spec.name, deadline)

    def check_expired(self, flow: Flow, t_s: float) -> None:
        """Apply a lazy expiry that is due by ``t_s`` (a packet arrival or the end of the run)."""
        if flow.alive:
            deadline = flow.last_seen_s + self.timeout_s
            if t_s >= deadline - EPS_S:
                self.expire(flow, deadline, t_s)

    # ------------------------------------------------------------------ packets
    def admit(self, seg, from_client: bool, t_s: float, instance: int = 0, klass: int = 0) -> int:
        """A SYN from client instance ``instance`` reaches the device at ``t_s`` before its flow
        exists: FORWARD (the SYN makes the flow); with the table full, DROP or BOUNCE (RST to the
        sender, counted in traffic class ``klass``'s ledger) as ``on_full`` says; with no port free,
        DROP; or TAKEN by a fault standing in front of it (sim.model.faults)."""
        ports = self.ports
        if self.active < self.flow_limit and (ports is None or ports.has_free(ports.budget_of(instance))):
            return FORWARD
        return self._full(seg, t_s, instance, self.ledgers[klass])

    def _full(self, seg, t_s: float, instance: int, led: Ledger) -> int:
        """The table is at its limit, or client instance ``instance``'s port budget looks spent,
        when a new entry is needed at ``t_s``: entries whose idle timer ran out by then, not yet
        discovered (expiry is lazy), are freed first, and ports whose reuse hold ran out are given
        back; if the table is still full the packet is refused as ``on_full`` says, if no port is
        free it is dropped. Only SYNs count as rejected connects (a conntrack pick-up refused the
        same way is not a connect)."""
        self._reap(t_s)
        if self.active < self.flow_limit:
            ports = self.ports
            if ports is None or ports.free(ports.budget_of(instance), t_s):
                return FORWARD
            # no source port: the NAT cannot translate the SYN and drops it (ErrorPortAllocation)
            if seg.kind == SYN:
                self.connects_rejected += 1
            return DROP
        if seg.kind == SYN:
            self.connects_rejected += 1
        if self.spec.on_full == "rst" and seg.kind != RST:
            led.lb_rsts += 1
            return BOUNCE
        return DROP

    def _reap(self, t_s: float) -> None:
        """Expire every silently expiring entry due by ``t_s``. The queue's keys are lower bounds of
        the deadlines (a refresh only moves a deadline later), so an entry popped early is pushed
        back with its current deadline: each pop frees an entry, drops a dead one, or moves on."""
        queue = self.expiries
        while queue and queue[0][0] <= t_s + EPS_S:
            _, seq, flow = heapq.heappop(queue)
            if not flow.alive:
                flow.queued = False
                continue
            deadline = flow.last_seen_s + self.timeout_s
            if t_s >= deadline - EPS_S:
                flow.queued = False
                self.expire(flow, deadline, t_s)
            else:
                heapq.heappush(queue, (deadline, seq, flow))

    def handle(self, flow: Flow, kind: int, seg, from_client: bool, t_s: float) -> int:
        """A segment reaches the device at ``t_s``: FORWARD, DROP or BOUNCE (RST to the sender)."""
        if flow.alive and t_s >= flow.last_seen_s + self.timeout_s - EPS_S:  # check_expired, inline
            self.expire(flow, flow.last_seen_s + self.timeout_s, t_s)
        if not flow.alive:
            if flow.fin_dirs == 3 and kind != SYN:
                # closed by FIN both ways: the entry lingers (conntrack's TIME_WAIT) for the last
                # ACK and any retransmitted FIN (kernel-lifecycle.md R46, R49)
                return FORWARD
            if kind == RST:
                return DROP  # an RST for a forgotten flow is never answered
            policy = self.spec.late_from_client if from_client else self.spec.late_from_server
            if policy == RST_TO_SENDER:
                flow.ledger.lb_rsts += 1
                return BOUNCE
            if policy == LATE_DROP or kind == SYN:
                return DROP
            ports = self.ports
            if self.active >= self.flow_limit or (
                    ports is not None and not ports.has_free(ports.budget_of(flow.path.port_group))):
                # the pick-up needs an entry, a port
                verdict = self._full(seg, t_s, flow.path.port_group, flow.ledger)
                if verdict != FORWARD:
                    return verdict
            self._start(flow, t_s)  # new_flow: conntrack pick-up, forward
        gap = t_s - flow.last_seen_s
        led = flow.ledger  # its class's counters (sim.model.ledger)
        bucket = int(t_s // self.bucket_s)
        size = SEGMENT_HEADER_BYTES
        status = 0
        if kind == DATA:
            payload = seg.payload
            status = payload.status if isinstance(payload, Msg) else 0
            if status < 0:  # an HTTP/2 PING, PING ACK or GOAWAY: a 17-byte frame, whatever the requests
                size += H2_CONTROL_FRAME_BYTES
                if status != GOAWAY:  # L7 keepalive: counted with the keepalive packets (docs/outputs.md)
                    led.keepalive_packets += 1
                    led.ping_packets += 1
                    bump(led.ka_per_bucket, bucket)
            elif self.message_sizes and isinstance(payload, Msg) and payload.size_bytes >= 0:
                size += payload.size_bytes  # a traffic process may give a request its own size
            else:
                size += self.payload_bytes[0 if from_client else 1]
        per_bucket = led.bytes_per_bucket
        if bucket < len(per_bucket):  # inline bump(): this runs for every packet
            per_bucket[bucket] += size
        else:
            bump(per_bucket, bucket, size)
        if kind != DATA:
            if kind == PROBE or (kind == ACK and seg.probe_ack):
                led.keepalive_packets += 1
                bump(led.ka_per_bucket, bucket)
                if kind == PROBE and flow.proxy is not None and seg.origin == "host":
                    flow.proxy.saw_keepalive()
        if self.refresh_any or (kind == DATA and status >= 0):
            # a byte-counting proxy (ALB) ignores HTTP/2 PING frames: "These do not reset the
            # connection idle timeout" (lb-catalog.md 2.4)
            slack = self.timeout_s - gap
            if slack < flow.min_slack_s:
                flow.min_slack_s = slack
            flow.last_seen_s = t_s
        if kind == DATA:
            if t_s - flow.last_data_s >= self.timeout_s:
                flow.at_risk_gaps += 1
            flow.last_data_s = t_s
        elif kind == RST:
            self._end(flow, t_s, True)
        elif kind == FIN and flow.proxy is None:  # a proxy's view ends with the proxy's idle timer
            flow.fin_dirs |= 1 if from_client else 2
            if flow.fin_dirs == 3:
                self._end(flow, t_s, True)
        return FORWARD

    def finish(self, flow: Flow, end_s: float) -> None:
        """End of run: discover a due expiry and count the trailing idle gap."""
        if flow.alive_at_end is not None:  # a proxy's flow is shared by two legs: settle it once
            return
        self.check_expired(flow, end_s)
        flow.alive_at_end = flow.alive
        if flow.alive:
            if end_s - flow.last_data_s >= self.timeout_s:
                flow.at_risk_gaps += 1
            self._end(flow, end_s)

    def export(self, nlcu: dict | None) -> dict:
        """This device's capacity record for the run (sim.metrics.capacity reads it): its name and
        leg, counters, flow-table intervals and series (its ledgers' sums), and with two or more
        traffic classes each class's own as ``classes`` ({name: ledger record}: sim.model.ledger).
        ``nlcu``: its profile's NLCU figures."""
        ledgers = [led.export() for led in self.ledgers]
        out = {"name": self.spec.name, "leg": self.leg,
               **(ledgers[0] if len(ledgers) == 1 else merge_ledgers(ledgers)),
               "nlcu": nlcu, "flows_limit": self.spec.max_flows,
               "connects_rejected": self.connects_rejected, "ports_limit": self.spec.ports_limit,
               "port_intervals": self.ports.intervals if self.ports is not None else []}
        if self.class_names:
            out["classes"] = dict(zip(self.class_names, ledgers, strict=True))
        return out

"""Wire a validated scenario into a SimPy world and run it: ``run_one(config, seed) -> records``."""

from __future__ import annotations

import gc
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from sim.facts.names import CLASS_COLUMN, CONN_ID_STRIDE, RECORD_COLUMNS
from sim.model.app import ClientSlot, Server
from sim.model.clock import Clock, make_scheduler
from sim.model.faults import FaultedMiddlebox, device_faults, leg_faults, make_faults
from sim.model.faults import counts as fault_counts
from sim.model.groups import packed, shares_flow_tables, worker_groups
from sim.model.host import Host, SockOpts
from sim.model.kernel import TcpSocket
from sim.model.ledger import merge_ledgers, sum_counts
from sim.model.middlebox import Middlebox, series_bucket_s
from sim.model.network import Path
from sim.model.pool import PoolConn, UpstreamPool
from sim.model.proxy import EnvoyConn, EnvoySettings
from sim.model.records import Conn
from sim.model.slot_classes import build_slots, first_class, make_classes
from sim.model.slot_classes import slot_rng as _rng
from sim.model.storm import arm as arm_storm
from sim.model.terminating import TermProxyConn
from sim.model.timeouts import FifoTimeouts
from sim.model.tracing import Trace
from sim.spec import HostSpec, MiddleboxSpec, SocketSpec, WorldSpec

# Named random streams: spawn keys under the run's seed. A slot's gaps depend only on
# (seed, slot), so every grid point replays the same traffic (common random numbers); the gaps' and
# service times' keys are STREAM_GAPS and STREAM_SERVICE (sim.model.slot_classes).
STREAM_WHEEL: Final = 3
#: Fleets of more client slots than this are simulated a chunk of slots at a time (run_one). Slots
#: are independent (run_split relies on the same), so the records are the same; but a chunk's state
#: stays in the CPU caches and its event heap stays small, so an event costs about half as much at
#: 100,000 connections as with the whole fleet in memory at once, and peak memory holds one chunk's
#: state (docs/performance.md). Measured on 100,000 connections x 2 h of configs/nlb.yaml: chunks of
#: 10,000 slots 35.8 s, 5,000 30.8 s, 2,500 26.7 s, 1,000 22.8 s, 500 22.3 s (whole fleet: 48 s).
CHUNK_SLOTS: Final = 1_000
#: A record's values in RECORD_COLUMNS order.
_ROW_VALUES: Final = operator.attrgetter(*RECORD_COLUMNS)
#: Wheel phases are drawn below the largest granularity any timer here can use (level 7).
_PHASE_SPAN_J: Final = 8**7


@dataclass
class Records:
    """What one run produced: per-connection columns and per-run counters."""

    columns: dict[str, list] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    flow_intervals: list[tuple[float, float]] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    #: the traced connection's entries, tuples in sim.facts.names.TRACE_FIELDS order (sim.model.tracing)
    trace: list | None = None
    #: capacity time series of the client-facing LB (sim.metrics.capacity)
    series: dict = field(default_factory=dict)


def sock_opts(socket: SocketSpec) -> SockOpts:
    """The runtime socket options of a socket spec (R1: a 0 falls back to the netns sysctl)."""
    return SockOpts(keepalive=socket.keepalive, idle_s=socket.idle_s, intvl_s=socket.intvl_s, count=socket.count,
                    user_timeout_ms=socket.user_timeout_ms, syncnt=socket.syncnt)


class World:
    """Every entity of one replication, built from a world spec (sim.spec) alone."""

    def __init__(self, spec: WorldSpec, seed: int, trace_conn: int | None = None,
                 slots: Iterable[int] | None = None) -> None:
        self.spec = spec
        self.seed = seed
        #: client.reconnect: the policy, and whether slots back off (sim.model.storm)
        self.reconnect_policy = spec.client.reconnect.policy
        self.backoff = self.reconnect_policy == "backoff"
        self.trace_conn = trace_conn
        self.trace: Trace | None = None
        self.sched = make_scheduler(spec.duration_s, spec.shortcuts)
        self.hop_s = spec.hop_s
        self.instances = spec.client.instances
        wheel = _rng(seed, STREAM_WHEEL)

        def host(h: HostSpec) -> Host:
            return Host(h.name, self.sched, Clock(h.hz, h.exact, float(wheel.uniform(0, _PHASE_SPAN_J))),
                        h.sysctls())

        # the hosts draw their wheel phases in this order (client, Envoy, upstream, then a terminating LB)
        self.client_host = host(spec.client.host)
        self.envoy_host = host(spec.envoy.host) if spec.envoy else None
        self.envoy_settings = EnvoySettings(spec.envoy) if spec.envoy else None
        self.upstream_host = host(spec.server.host)
        t = spec.traffic
        sizes = (t.request_bytes, t.response_bytes)
        bucket_s = series_bucket_s(spec.duration_s)
        # Injected faults (sim.model.faults): one object each, counting what it takes; a device with
        # faults in front of it is a FaultedMiddlebox, a leg's paths check its faults at their far end.
        self.faults = make_faults(spec.faults)
        self.leg_faults = {leg: leg_faults(self.faults, spec.faults, leg) for leg in ("downstream", "upstream")}

        def device(m: MiddleboxSpec, leg: str) -> Middlebox:
            at = device_faults(self.faults, spec.faults, m.name)
            if at:
                return FaultedMiddlebox(m, self.sched, sizes, leg, bucket_s, at)
            return Middlebox(m, self.sched, sizes, leg, bucket_s)

        self.ds_mbs = [device(m, "downstream") for m in spec.lb]
        # A terminating LB splits the client's path in two legs; its flow-table view sits on both.
        self.term = next((m for m in self.ds_mbs if m.spec.terminating), None)
        self.front_mbs, self.back_mbs = self.ds_mbs, []
        if self.term is not None:
            k = self.ds_mbs.index(self.term)
            self.front_mbs = self.ds_mbs[: k + 1]
            self.back_mbs = self.ds_mbs[k:]
            self.lb_host = host(spec.lb_host)
        self.us_mbs = [device(m, "upstream") for m in spec.upstream_lb]
        # One options object per kind of socket, shared by the fleet (a setsockopt replaces a copy).
        self.client_spec = sock_opts(spec.client.socket)
        self.upstream_spec = sock_opts(spec.server.socket)
        if spec.envoy:
            self.listener_spec = sock_opts(spec.envoy.listener_socket)
            self.envoy_up_spec = sock_opts(spec.envoy.upstream_socket)
        self.conns: list[Conn] = []
        # Fixed-length request timeouts, one queue each for the whole fleet (FifoTimeouts); the
        # client's, one per traffic class (sim.model.slot_classes)
        self.route_timeouts = None
        if spec.envoy and spec.envoy.request_timeout_s > 0:
            self.route_timeouts = FifoTimeouts(self.sched, spec.envoy.request_timeout_s, "active",
                                               EnvoyConn._request_timer)
        #: Envoy's cluster connect_timeout, one queue for the fleet like the request timeouts
        self.connect_timeouts = None
        if spec.envoy and spec.envoy.connect_timeout_s > 0:
            self.connect_timeouts = FifoTimeouts(self.sched, spec.envoy.connect_timeout_s, "connecting",
                                                 EnvoyConn._connect_timer)
        #: Envoy's upstream pools, one per worker (an HTTP listener; sim.model.pool), with the
        #: cluster's connect_timeout on their connections
        #: (made when a slot first needs one: a world of one worker's slots uses one of them)
        self.pools: list[UpstreamPool | None] = []
        self.pool_connect_timeouts = None
        if spec.envoy and not spec.envoy.tcp_proxy:
            assert self.envoy_settings is not None
            self.pools = [None] * (spec.envoy.concurrency * spec.envoy.replicas)
            if spec.envoy.connect_timeout_s > 0:
                self.pool_connect_timeouts = FifoTimeouts(self.sched, spec.envoy.connect_timeout_s, "connecting",
                                                          PoolConn._connect_timer)
            self.connect_timeouts = None
        # Everything random is per slot, and connection ids are per slot too, so a subset of the
        # slots simulates exactly as it would within the whole fleet (see run_split). Each slot is of
        # a traffic class (sim.model.slot_classes); further classes' hosts draw their phases last.
        first = first_class(self, spec, self.client_host, self.client_spec)
        self.classes = make_classes(self, spec, host, sock_opts, first)
        #: each Envoy instance's host (envoy.replicas): the first drew its phase with the other hosts,
        #: the further ones draw theirs after every other host's
        self.envoy_hosts: list[Host] = []
        if spec.envoy is not None:
            assert self.envoy_host is not None
            self.envoy_hosts = [self.envoy_host] + [host(spec.envoy.host) for _ in range(spec.envoy.replicas - 1)]
        if len(self.classes) > 1:  # the devices count each class apart (sim.model.ledger)
            for m in self.ds_mbs + self.us_mbs:
                m.set_classes([k.name for k in self.classes])
        self.slots: list[ClientSlot] = build_slots(self, self.classes, seed, slots)
        if spec.storm is not None:
            arm_storm(self, spec.storm, seed)

    def now(self) -> float:
        return self.sched.now_s

    def _connect(self, slot: ClientSlot, leg: str, mbs: list[Middlebox], a_host: Host, a_owner, a_spec: SockOpts,
                 b_host: Host, b_owner, b_spec: SockOpts, shared_flow=None, ends: tuple[bool, bool] = (True, True)
                 ) -> Conn:
        """``ends``: whether the opener's and the acceptor's ends of this connection are ends of its
        leg, where the leg's faults stand (a terminating LB's own sockets are inside the leg)."""
        path = Path(self.sched, mbs, self.hop_s)
        path.klass = slot.kind.index  # its flows count in its class's ledgers, as its row's class says
        if leg == "downstream":  # slot i runs on client machine i % client.instances (default: its own)
            path.port_group = slot.index % self.instances if self.instances else slot.index
        elif leg == "upstream":  # opened by Envoy instance i % replicas, a client instance of that leg
            path.port_group = slot.index % len(self.envoy_hosts) if self.envoy_hosts else 0
        faults = self.leg_faults["upstream" if leg == "upstream" else "downstream"]
        if faults is not None and ends != (False, False):
            path.faults = faults
            path.fault_ends = ends
        if shared_flow is not None:  # the back leg of a terminating LB: its view's flow already exists
            path.flows = (shared_flow,)
        cs = TcpSocket(a_host, a_owner, None)
        ss = TcpSocket(b_host, b_owner, None)
        conn = Conn(slot.new_conn_id(), leg, path, self.now(), cs, ss)
        if conn.conn_id == self.trace_conn:
            t = self.spec.traffic
            path.trace = self.trace = Trace((t.request_bytes, t.response_bytes))
        # Set before connect() / on the listener before listen(), as STATE_PREBIND does (R5, R6);
        # an accepted child inherits SO_KEEPALIVE and TCP_KEEP* from its listener (checked on 6.18).
        cs.opts = a_spec
        ss.opts = b_spec
        cs.tag = ss.tag = conn
        if isinstance(b_owner, Server):
            ss.owner = b_owner.accept(conn)
        path.attach(cs, ss)
        ss.listen()
        self.conns.append(conn)
        cs.connect()
        return conn

    def open_downstream(self, slot: ClientSlot) -> Conn:
        """The client opens a connection: to a terminating LB, to Envoy, or to the upstream."""
        if self.term is not None:
            conn = self._connect(slot, "downstream", self.front_mbs, slot.kind.host, slot, slot.kind.opts,
                                 self.lb_host, None, SockOpts(), ends=(True, False))
            conn.ss.owner = TermProxyConn(self, slot, conn, self.term.spec)
            return conn
        return self._to_server(slot, "downstream", self.ds_mbs, slot.kind.host, slot, slot.kind.opts)

    def open_lb_backend(self, proxy: TermProxyConn) -> Conn:
        """A terminating LB opens its back leg, to Envoy or to the upstream."""
        return self._to_server(proxy.slot, "lb_backend", self.back_mbs, self.lb_host, proxy, SockOpts(), proxy.flow,
                               ends=(False, True))

    def _to_server(self, slot: ClientSlot, leg: str, mbs: list[Middlebox], a_host: Host, a_owner, a_spec: SockOpts,
                   shared_flow=None, ends: tuple[bool, bool] = (True, True)) -> Conn:
        if self.spec.envoy:
            assert self.envoy_settings is not None
            conn = self._connect(slot, leg, mbs, a_host, a_owner, a_spec, self.envoy_of(slot), None,
                                 self.listener_spec, shared_flow, ends)
            conn.ss.owner = EnvoyConn(self, slot, conn, self.envoy_settings)
            return conn
        return self._connect(slot, leg, mbs, a_host, a_owner, a_spec, self.upstream_host, slot.server,
                             self.upstream_spec, shared_flow, ends)

    def pool_for(self, slot: ClientSlot) -> UpstreamPool | None:
        """The upstream pool of the worker serving ``slot``'s connections (None: no pools). The LB
        spreads slots over the Envoy instances (``envoy_of``) and each instance's kernel over its
        workers (Envoy sets no exact_balance); slot ``i``'s pool is ``i % (replicas * concurrency)``,
        which spreads the slots evenly and keeps every record reproducible (docs/model.md)."""
        pools = self.pools
        if not pools:
            return None
        k = slot.index % len(pools)
        pool = pools[k]
        if pool is None:
            assert self.envoy_settings is not None
            pool = pools[k] = UpstreamPool(self, self.envoy_settings)
        return pool

    def envoy_of(self, slot: ClientSlot) -> Host:
        """The host of the Envoy instance serving ``slot``: ``i % replicas``, which is also where its
        pool (``pool_for``) is."""
        hosts = self.envoy_hosts
        return hosts[slot.index % len(hosts)]

    def open_upstream(self, owner: EnvoyConn | PoolConn) -> Conn:
        """Envoy opens an upstream (cluster) connection: its own (tcp_proxy) or a pool's."""
        slot = owner.slot
        return self._connect(slot, "upstream", self.us_mbs, self.envoy_of(slot), owner, self.envoy_up_spec,
                             self.upstream_host, slot.server, self.upstream_spec)

    def finish(self) -> Records:
        end = self.spec.duration_s
        # Entries still queued can never run now; their memory goes to the records instead.
        self.sched.clear()
        conns = self.conns
        conns.sort(key=lambda c: c.conn_id)  # rows by id, however the fleet ran
        # Columns of their final length, filled a row at a time: no row objects are kept.
        cols: list[list] = [[None] * len(conns) for _ in RECORD_COLUMNS]
        for conn in conns:
            conn.path.finish(end)
        self._hung_at_end(end)
        for i, conn in enumerate(conns):
            # a named record (ConnRecord), read in RECORD_COLUMNS order by one C call
            for col, value in zip(cols, _ROW_VALUES(conn.row(end)), strict=True):
                col[i] = value
        columns = dict(zip(RECORD_COLUMNS, cols, strict=True))
        # every leg of a slot's connection is of the slot's traffic class
        if len(self.classes) == 1:
            columns[CLASS_COLUMN] = [self.classes[0].name] * len(conns)
        else:
            names = {slot.index: slot.kind.name for slot in self.slots}
            columns[CLASS_COLUMN] = [names[c.conn_id // CONN_ID_STRIDE] for c in conns]
        mbs = self.ds_mbs + self.us_mbs
        counters: dict[str, int] = {
            "keepalive_packets": sum(m.keepalive_packets for m in mbs),
            "lb_rsts": sum(m.lb_rsts for m in mbs),
            "new_flows": sum(m.new_flows for m in mbs),
            "fault_drops": sum(f.drops for f in self.faults),
            "fault_rsts": sum(f.rsts for f in self.faults),
        }
        intervals = [iv for m in mbs for iv in m.intervals]
        devices = [m.export(asdict(m.spec.nlcu) if m.spec.nlcu else None) for m in mbs]
        # devices in path order, downstream first: the first is "the LB" of the lb_* figures
        failed = [k.failed_per_s for k in self.classes]
        series: dict[str, Any] = {"bucket_s": series_bucket_s(end),
                                  "failed_per_s": failed[0] if len(failed) == 1 else sum_counts(failed),
                                  "devices": devices, "faults": fault_counts(self.faults)}
        if len(failed) > 1:  # each traffic class's own (docs/outputs.md#traffic-classes)
            series["class_failed_per_s"] = {k.name: k.failed_per_s for k in self.classes}
        trace = self.trace.events if self.trace is not None else None
        return Records(columns=columns, counters=counters, flow_intervals=intervals, trace=trace,
                       series=series)

    def _hung_at_end(self, end_s: float) -> None:
        """Requests still waiting at the end on a path a middlebox forgot fail as ``hung`` (and stay in
        flight): on the client's row when any leg that carries the request lost its flow, and on
        Envoy's upstream row when that leg lost it."""
        for conn in self.conns:
            if not conn.in_flight:
                continue
            if conn.leg == "upstream":
                if conn.lost_at_end():
                    conn.hang_at_end(end_s)
            elif conn.leg == "downstream" and any(c.lost_at_end() for c in _legs_serving(conn)):
                conn.hang_at_end(end_s)


def _legs_serving(conn: Conn) -> list[Conn]:
    """A client connection and the legs a terminating LB and Envoy opened to carry its request."""
    legs = [conn]
    owner = conn.ss.owner
    if isinstance(owner, TermProxyConn):
        back = owner.back
        if back is None:
            return legs
        legs.append(back)
        owner = back.ss.owner
    if isinstance(owner, EnvoyConn) and owner.us is not None and owner.us.in_flight:
        legs.append(owner.us)
    return legs


def run_world(spec: WorldSpec, seed: int, trace_conn: int | None = None,
              slots: Iterable[int] | None = None, chunk_slots: int = CHUNK_SLOTS) -> Records:
    """Simulate one replication of ``spec`` with ``seed``. Pure: no files, no CLI, no executors.
    ``trace_conn``: record every packet of that connection id (for timelines). ``slots``: simulate
    only these client slots (the rest of the fleet is independent of them). A fleet of more than
    ``chunk_slots`` slots is simulated that many slots at a time, one chunk after another, and
    merged: the same records (0: never; nor with ``Shortcuts.chunking`` off, nor when a device has a
    flow limit: ``shares_flow_tables``). When Envoy's upstream pools are all the slots share, such a
    fleet is simulated one worker's slots at a time instead (``worker_groups``), also exactly."""
    chosen = range(spec.connections) if slots is None else list(slots)
    if spec.shortcuts.chunking and 0 < chunk_slots < len(chosen):
        groups = worker_groups(spec, chosen)
        if groups is not None and len(groups) > 1:  # Envoy's pools: whole workers' slots a world
            pieces: list[Sequence[int]] = list(packed(groups, chunk_slots))
        elif not shares_flow_tables(spec):
            pieces = [chosen[a:a + chunk_slots] for a in range(0, len(chosen), chunk_slots)]
        else:
            pieces = []
        if pieces:
            t0 = time.perf_counter()
            rec = merge([_run_world(spec, seed, trace_conn, p) for p in pieces])
            rec.run["wall_s"] = time.perf_counter() - t0
            return rec
    return _run_world(spec, seed, trace_conn, slots)


def _run_world(spec: WorldSpec, seed: int, trace_conn: int | None, slots: Iterable[int] | None) -> Records:
    t0 = time.perf_counter()
    # The model's short-lived garbage (segments, heap entries) has no reference cycles and is freed
    # by reference counting; the cyclic collector would only re-walk every live connection, over and
    # over, as a fleet is built, runs and is turned into columns. It is paused throughout and
    # restored after.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        world = World(spec, seed, trace_conn, slots)
        world.sched.run(spec.duration_s)
        rec = world.finish()
    finally:
        if gc_was_enabled:
            gc.enable()
    events = world.sched.events_run
    from sim import __version__

    rec.run = {"events": events, "wall_s": time.perf_counter() - t0, "version": __version__}
    return rec


def merge(parts: list[Records]) -> Records:
    """Records of disjoint slot sets, as one run: rows ordered by connection id."""
    names = list(parts[0].columns)
    rows = sorted((r for p in parts for r in zip(*(p.columns[k] for k in names), strict=True)), key=lambda r: r[0])
    columns = {k: [r[i] for r in rows] for i, k in enumerate(names)}
    counters = {k: sum(p.counters[k] for p in parts) for k in parts[0].counters}
    intervals = [iv for p in parts for iv in p.flow_intervals]
    trace = next((p.trace for p in parts if p.trace is not None), None)
    series = {"bucket_s": parts[0].series["bucket_s"],
              "failed_per_s": sum_counts([p.series["failed_per_s"] for p in parts]),
              "devices": [_merge_device([p.series["devices"][i] for p in parts])
                          for i in range(len(parts[0].series["devices"]))],
              "faults": [[sum(c) for c in zip(*each, strict=True)]
                         for each in zip(*(p.series["faults"] for p in parts), strict=True)]}
    if any("class_failed_per_s" in p.series for p in parts):
        per_class = [p.series.get("class_failed_per_s", {}) for p in parts]
        series["class_failed_per_s"] = {name: sum_counts([c.get(name, {}) for c in per_class])
                                        for name in sorted({n for c in per_class for n in c})}
    run = {"events": sum(p.run["events"] for p in parts), "wall_s": max(p.run["wall_s"] for p in parts),
           "version": parts[0].run["version"]}
    return Records(columns=columns, counters=counters, flow_intervals=intervals, run=run, trace=trace,
                   series=series)


def _merge_device(parts: list[dict]) -> dict:
    """One device's capacity records of disjoint slot sets, as one run's: each traffic class's
    (``classes``) merged alike."""
    first = parts[0]
    out = {"name": first["name"], "leg": first["leg"], "nlcu": first["nlcu"], "flows_limit": first["flows_limit"],
           "ports_limit": first["ports_limit"], "port_intervals": [iv for p in parts for iv in p["port_intervals"]],
           "connects_rejected": sum(p["connects_rejected"] for p in parts), **merge_ledgers(parts)}
    if any("classes" in p for p in parts):
        names = [n for n in first.get("classes", {})] + sorted({n for p in parts for n in p.get("classes", {})}
                                                                - set(first.get("classes", {})))
        out["classes"] = {n: merge_ledgers([p["classes"][n] for p in parts if n in p.get("classes", {})])
                          for n in names}
    return out


"""Wire a validated scenario into a SimPy world and run it: ``run_one(config, seed) -> records``."""

from __future__ import annotations

import gc
import itertools
import time
from dataclasses import dataclass, field

import numpy as np
import simpy

from sim.config.profiles import middlebox_spec
from sim.config.schema import KeepaliveCfg, KernelCfg, Scenario, lb_list
from sim.model.app import ClientSlot, Sampler, Server, SockSpec
from sim.model.clock import Clock, Scheduler
from sim.model.kernel import Host, TcpSocket
from sim.model.middlebox import Middlebox
from sim.model.network import Path
from sim.model.proxy import EnvoyConn
from sim.model.records import COLUMNS, Conn

# Named random streams: spawn keys under the run's seed. A slot's gaps depend only on
# (seed, slot), so every grid point replays the same traffic (common random numbers).
STREAM_GAPS, STREAM_SERVICE, STREAM_WHEEL = 1, 2, 3
#: Wheel phases are drawn below the largest granularity any timer here can use (level 7).
_PHASE_SPAN_J = 8**7


@dataclass
class Records:
    """What one run produced: per-connection columns and per-run counters."""

    columns: dict[str, list] = field(default_factory=dict)
    counters: dict[str, float] = field(default_factory=dict)
    flow_intervals: list[tuple[float, float]] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    trace: list | None = None


def sock_spec(ka: KeepaliveCfg, user_timeout_s: float) -> SockSpec:
    """Config keepalive → socket options (a missing value falls back to the sysctl, R1)."""
    return SockSpec(
        keepalive=ka.enabled,
        idle_s=ka.idle or 0,
        intvl_s=ka.interval or 0,
        count=ka.count or 0,
        user_timeout_ms=int(round(user_timeout_s * 1000)),
    )


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


class World:
    """Every entity of one replication."""

    def __init__(self, sc: Scenario, seed: int, trace_conn: int | None = None) -> None:
        self.sc = sc
        self.trace_conn = trace_conn
        self.trace: list | None = None
        self.env = simpy.Environment()
        self.sched = Scheduler(self.env)
        self.hop_s = sc.network.one_way_delay
        wheel = _rng(seed, STREAM_WHEEL)
        base = sc.kernel

        def host(name: str, over: KernelCfg) -> Host:
            hz, exact, sysctl = base.merged(over).resolved()
            return Host(name, self.sched, Clock(hz, exact, float(wheel.uniform(0, _PHASE_SPAN_J))), sysctl)

        self.client_host = host("client", sc.client.kernel)
        self.envoy_host = host("envoy", sc.envoy.kernel) if sc.envoy else None
        self.upstream_host = host("upstream", sc.upstream.kernel)
        self.ds_mbs = [Middlebox(middlebox_spec(c), self.sched) for c in lb_list(sc.lb)]
        self.us_mbs = [Middlebox(middlebox_spec(c), self.sched) for c in lb_list(sc.upstream.lb)]
        self.client_spec = sock_spec(sc.client.keepalive, sc.client.user_timeout)
        self.upstream_spec = sock_spec(sc.upstream.keepalive, sc.upstream.user_timeout)
        if sc.envoy:
            lst, ups = sc.envoy.listener, sc.envoy.upstream
            self.listener_spec = sock_spec(lst.keepalive, lst.user_timeout)
            self.envoy_up_spec = sock_spec(ups.keepalive, ups.user_timeout)
        kind, a, b = sc.traffic.service_time.spec()
        self.server = Server(self, Sampler(kind, a, b, _rng(seed, STREAM_SERVICE)))
        self.conns: list[Conn] = []
        self._ids = itertools.count()
        gk, ga, gb = sc.traffic.request_gap.spec()
        n = sc.connections
        self.slots = [ClientSlot(self, i, Sampler(gk, ga, gb, _rng(seed, STREAM_GAPS, i) if gk != "fixed" else None))
                      for i in range(n)]
        for i, slot in enumerate(self.slots):
            self.sched.call_at(i * sc.traffic.ramp / n, slot.open)

    def now(self) -> float:
        return self.env._now

    def _connect(self, leg: str, mbs: list[Middlebox], a_host: Host, a_owner, a_spec: SockSpec,
                 b_host: Host, b_owner, b_spec: SockSpec) -> Conn:
        path = Path(self.sched, mbs, self.hop_s)
        conn = Conn(next(self._ids), leg, path, self.now())
        if conn.conn_id == self.trace_conn:
            path.trace = self.trace = []
        cs = TcpSocket(a_host, a_owner, None)
        ss = TcpSocket(b_host, b_owner, None)
        a_spec.apply(cs)
        b_spec.apply(ss)  # set on the listener before listen(); the child inherits them (R6)
        cs.tag = ss.tag = conn
        conn.cs, conn.ss = cs, ss
        path.attach(cs, ss)
        ss.listen()
        self.conns.append(conn)
        cs.connect()
        return conn

    def open_downstream(self, slot: ClientSlot) -> Conn:
        """The client opens a connection to Envoy, or straight to the upstream without Envoy."""
        sc = self.sc
        if sc.envoy:
            conn = self._connect("downstream", self.ds_mbs, self.client_host, slot, self.client_spec,
                                 self.envoy_host, None, self.listener_spec)
            owner = EnvoyConn(self, conn, sc.envoy.listener.idle_timeout, sc.envoy.upstream.idle_timeout)
            conn.ss.owner = owner
            return conn
        return self._connect("downstream", self.ds_mbs, self.client_host, slot, self.client_spec,
                             self.upstream_host, self.server, self.upstream_spec)

    def open_upstream(self, owner: EnvoyConn) -> Conn:
        """Envoy opens its upstream (cluster) connection."""
        return self._connect("upstream", self.us_mbs, self.envoy_host, owner, self.envoy_up_spec,
                             self.upstream_host, self.server, self.upstream_spec)

    def finish(self) -> Records:
        end = self.sc.duration
        rows = []
        for conn in self.conns:
            conn.path.finish(end)
            rows.append(conn.row(end))
        columns = {name: [r[i] for r in rows] for i, name in enumerate(COLUMNS)}
        mbs = self.ds_mbs + self.us_mbs
        counters = {
            "keepalive_packets": sum(m.keepalive_packets for m in mbs),
            "lb_rsts": sum(m.lb_rsts for m in mbs),
            "new_flows": sum(m.new_flows for m in mbs),
        }
        intervals = [iv for m in mbs for iv in m.intervals]
        return Records(columns=columns, counters=counters, flow_intervals=intervals, trace=self.trace)


def run_one(sc: Scenario, seed: int, trace_conn: int | None = None) -> Records:
    """Simulate one replication of ``sc`` with ``seed``. Pure: no files, no CLI, no executors.
    ``trace_conn``: record every packet of that connection id (for timelines)."""
    t0 = time.perf_counter()
    world = World(sc, seed, trace_conn)
    # The model's short-lived garbage (segments, heap entries) has no reference cycles and is freed
    # by reference counting; the cyclic collector would only re-walk every live connection, over and
    # over, as a fleet grows. It is paused for the run and restored after.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        world.env.run(until=sc.duration)
    finally:
        if gc_was_enabled:
            gc.enable()
    rec = world.finish()
    events = world.sched.events_scheduled() - len(world.env._queue)
    from sim import __version__

    rec.run = {"events": events, "wall_s": time.perf_counter() - t0, "version": __version__}
    return rec

"""What a run or a sweep will cost, estimated from the resolved scenario(s) before anything is
simulated, and the limits above which ``run`` and ``sweep`` refuse without ``--force``.

The formula (docs/performance.md, "Cost estimate") is rough on purpose: it must catch requests that
would run for days or exhaust memory, in milliseconds, without simulating. For one replication:

    events = connections x (opens x legs x EVENTS_PER_CONNECTION
                            + duration x (legs x EVENTS_PER_REQUEST / cycle
                                          + EVENTS_PER_PROBE x sum(1 / idle of every socket with keepalive)
                                          + EVENTS_PER_PING / ping_interval
                                          + EVENTS_PER_LB_KEEPALIVE x 2 / keepalive_generation))

``cycle`` is the mean request gap + the mean service time + the round trip (2 x one_way_delay per
hop), so zero gaps with a tiny delay are as expensive as they are. ``legs`` counts the TCP
connections per client connection (client leg, Envoy's upstream leg, a terminating LB's back end).
A request timeout (the client's ``request_timeout``, Envoy's ``route_timeout``) shorter than the
service time replaces it, and closes the connection. ``opens`` = 1 + duration / lifetime when
something closes connections on purpose (a pool's ``max_lifetime``: lifetime = it; an idle timeout
shorter than the mean gap, or such a request timeout: lifetime = cycle), else 1. The constants are fitted to
the shipped configs' event counts (``python bench/cost_check.py`` prints estimate against
measurement). Memory per replication: the model state of the slots simulated at once, the records
of every connection opened, and the per-second and per-minute series. A sweep's total is
estimated per axis without expanding the grid: with c(v) the cost of the config with one axis set to
v, total = c(config) x prod over axes of sum over v of c(v) / c(config), exact when the cost is a
product of per-axis factors (connections x duration x ...); the memory of its largest task uses
max instead of sum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sim.config.load import Loaded, sweep_axes, with_values
from sim.config.profiles import middlebox_spec
from sim.config.schema import Dist, KeepaliveCfg, KernelCfg, Scenario, lb_list
from sim.errors import ConfigError
from sim.execution.simulate import slots_independent

# ----------------------------------------------------------------------------- fitted event costs
#: events per connection opened, per leg (handshake, close, timers set up)
EVENTS_PER_CONNECTION = 3.0
#: events per request per leg (request, response, their ACKs, the timer that sends it)
EVENTS_PER_REQUEST = 4.0
#: events per keepalive probe (timer firing, probe, answer)
EVENTS_PER_PROBE = 2.0
#: events per HTTP/2 PING (timer, PING, PONG, ACK)
EVENTS_PER_PING = 4.0
#: events per keepalive a terminating LB generates itself (per leg)
EVENTS_PER_LB_KEEPALIVE = 1.5
#: events per second of the compiled core on one core (docs/performance.md), for the time hint
EVENTS_PER_S = 600_000.0

# ----------------------------------------------------------------------------- memory and output
#: model state per open connection, both legs, with the whole fleet in memory (docs/performance.md)
BYTES_PER_OPEN_CONNECTION = 4_500
#: slots simulated at once by run_one (sim.model.scenario.CHUNK_SLOTS)
SLOTS_AT_ONCE = 1_000
#: the record of one finished connection (one leg) held until the run ends
BYTES_PER_RECORD = 1_200
#: per simulated second (the model's per-second counters) and per minute (capacity series)
BYTES_PER_SECOND = 16
BYTES_PER_MINUTE = 200
#: Parquet bytes per connection row and per series row, and per task (its part files)
OUTPUT_BYTES_PER_ROW = 60
OUTPUT_BYTES_PER_MINUTE = 24
OUTPUT_BYTES_PER_TASK = 12_000

# ----------------------------------------------------------------------------- limits
#: above these, run and sweep refuse without --force. MAX_EVENTS admits the 1,000,000-connection
#: x 24 h run of configs/nlb.yaml's traffic (about 1.7e9 estimated, 1.35e9 measured at 10,000)
MAX_EVENTS = 1e10
MAX_MEMORY_BYTES = 16 * 2**30
MAX_OUTPUT_BYTES = 50e9
MAX_GRID_POINTS = 100_000
MAX_TASKS = 1_000_000


@dataclass(frozen=True)
class Estimate:
    """Totals for a run or a whole sweep; ``memory_bytes`` is the peak with ``parallel`` tasks at once."""

    events: float
    tasks: float
    points: float
    memory_bytes: float
    output_bytes: float

    def over(self) -> list[str]:
        """The limits this estimate exceeds, as text (empty: within every limit)."""
        out = []
        if self.points > MAX_GRID_POINTS:
            out.append(f"{self.points:.3g} grid points (limit {MAX_GRID_POINTS:,})")
        if self.tasks > MAX_TASKS:
            out.append(f"{self.tasks:.3g} runs (limit {MAX_TASKS:,})")
        if _big(self.events, MAX_EVENTS):
            out.append(f"{self.events:.2g} simulation events, about {_time(self.events / EVENTS_PER_S)} on one core "
                       f"(limit {MAX_EVENTS:.0e})")
        if _big(self.memory_bytes, MAX_MEMORY_BYTES):
            out.append(f"{_bytes(self.memory_bytes)} of memory (limit {_bytes(MAX_MEMORY_BYTES)})")
        if _big(self.output_bytes, MAX_OUTPUT_BYTES):
            out.append(f"{_bytes(self.output_bytes)} of results (limit {_bytes(MAX_OUTPUT_BYTES)})")
        return out


def _big(x: float, limit: float) -> bool:
    return math.isnan(x) or x > limit


def _time(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600), ("minutes", 60)):
        if s >= size:
            return f"{s / size:.3g} {unit}"
    return f"{s:.3g} s"


def _bytes(b: float) -> str:
    if not math.isfinite(b):
        return "unbounded bytes"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def mean_s(d: Dist) -> float:
    """The mean of a duration distribution (seconds)."""
    kind, a, b = d.spec()
    if kind == "uniform":
        return (a + b) / 2
    if kind == "lognormal":
        return a * math.exp(min(b * b / 2, 700.0))
    return a


@dataclass(frozen=True)
class _Cost:
    """One point: every replication's events, the runs, the peak memory of one run, the output."""

    events: float
    tasks: float
    memory: float
    output: float


def _sockets(sc: Scenario, client: Any) -> list[tuple[KeepaliveCfg, KernelCfg]]:
    """(keepalive, kernel) of every socket that may send keepalive probes (``client``: a class's)."""
    k = sc.kernel
    out = [(client.keepalive, k.merged(client.kernel)), (sc.upstream.keepalive, k.merged(sc.upstream.kernel))]
    if sc.envoy:
        ek = k.merged(sc.envoy.kernel)
        out += [(sc.envoy.listener.keepalive, ek), (sc.envoy.upstream.keepalive, ek)]
    return out


def _slot_cost(sc: Scenario, specs: list, legs: int, traffic: Any, client: Any) -> tuple[float, float]:
    """(events, connections opened) of one slot of a class with ``traffic`` and ``client``."""
    hops = len(specs) + 1 + ((len(lb_list(sc.upstream.lb)) + 1) if sc.envoy else 0)
    gap = mean_s(traffic.request_gap)
    service = mean_s(traffic.service_time)
    # a request timeout (the client's, Envoy's route timeout) ends a long request, and its connection
    cutoffs = [t for t in (client.request_timeout, sc.envoy.listener.route_timeout if sc.envoy else 0.0) if t > 0]
    cut = bool(cutoffs) and min(cutoffs) < service
    cycle = gap + (min(cutoffs) if cut else service) + 2 * hops * sc.network.one_way_delay
    probes = 0.0
    for ka, kernel in _sockets(sc, client):
        if ka.enabled:  # type: ignore[attr-defined]
            _, _, sysctl = kernel.resolved()  # type: ignore[attr-defined]
            probes += 1.0 / (ka.idle or sysctl["net.ipv4.tcp_keepalive_time"])  # type: ignore[attr-defined]
    pings = 1.0 / client.ping_interval if client.ping_interval > 0 else 0.0
    lb_ka = sum(2.0 / s.keepalive_every_s for s in specs if s.keepalive_every_s > 0)
    idle_closers = [client.pool.idle_timeout, sc.upstream.idle_timeout]
    idle_closers += [s.idle_timeout_s for s in specs if s.refreshed_by == "payload"]  # ALB, proxies: FIN
    if sc.envoy:
        idle_closers += [sc.envoy.listener.idle_timeout, sc.envoy.upstream.idle_timeout]
    lifetimes = [t for t in (client.pool.max_lifetime,) if t > 0]
    if cut or any(0 < t < gap for t in idle_closers):
        lifetimes.append(cycle)
    opens = 1.0 + (sc.duration / min(lifetimes) if lifetimes else 0.0)
    per_second = legs * EVENTS_PER_REQUEST / cycle + EVENTS_PER_PROBE * probes + EVENTS_PER_PING * pings \
        + EVENTS_PER_LB_KEEPALIVE * lb_ka
    return opens * legs * EVENTS_PER_CONNECTION + sc.duration * per_second, opens


def point_cost(sc: Scenario) -> _Cost:
    """The estimate for every replication of one scenario (see the module docstring): each traffic
    class's events and connections per slot, weighted by its share."""
    specs = [middlebox_spec(c) for c in lb_list(sc.lb)]
    legs = 1 + (1 if sc.envoy else 0) + (1 if any(s.terminating for s in specs) else 0)
    per_slot = [(c.share, _slot_cost(sc, specs, legs, c.traffic, c.client)) for c in sc.classes()]
    # a sampled fleet simulates its sample only (fleet.sample)
    n = float(sc.fleet.sample_size() if sc.fleet is not None else sc.connections)
    reps = float(sc.replications)
    events = reps * n * sum(share * ev for share, (ev, _) in per_slot)
    opens = sum(share * op for share, (_, op) in per_slot)
    rows = n * opens * legs
    minutes = sc.duration / 60.0
    # slots that share a limited flow table, a port budget or Envoy's upstream pools are simulated all at once, never in
    # chunks (docs/model.md)
    limited = not slots_independent(sc)
    memory = ((n if limited else min(n, SLOTS_AT_ONCE)) * BYTES_PER_OPEN_CONNECTION + rows * BYTES_PER_RECORD
              + sc.duration * BYTES_PER_SECOND + minutes * BYTES_PER_MINUTE)
    output = reps * (rows * OUTPUT_BYTES_PER_ROW + minutes * OUTPUT_BYTES_PER_MINUTE + OUTPUT_BYTES_PER_TASK)
    return _Cost(_finite(events), reps, _finite(memory), _finite(output))


def _finite(x: float) -> float:
    return math.inf if math.isnan(x) else x


def estimate_run(sc: Scenario, streamed: bool = False) -> Estimate:
    """``run``: every replication, whose records are all held until the summary is printed; or,
    ``streamed`` (``run --executor dask``), a chunk of at most PIECE_SLOTS slots at a time per worker
    (a pooled fleet's chunk: one Envoy worker's slots), its rows written out and dropped
    (sim/execution/dask_run.py)."""
    c = point_cost(sc)
    if streamed:
        from sim.execution.runner import PIECE_SLOTS

        n = sc.fleet.sample_size() if sc.fleet is not None else sc.connections
        chunk = PIECE_SLOTS if slots_independent(sc) or sc.envoy is None else max(
            PIECE_SLOTS, math.ceil(n / (sc.envoy.concurrency * sc.envoy.replicas)))
        return Estimate(c.events, c.tasks, 1, c.memory * min(1.0, chunk / max(n, 1)), c.output)
    return Estimate(c.events, c.tasks, 1, c.memory * c.tasks, c.output)


def estimate_sweep(loaded: Loaded, parallel: int) -> Estimate:
    """The whole grid x replications, from the axis values one at a time (never the product)."""
    knobs, conds = sweep_axes(loaded.raw.get("sweep"), loaded.file, loaded.lines)
    axes = {**knobs, **conds}
    points = math.prod(len(v) for v in axes.values())
    if points > MAX_GRID_POINTS:
        return Estimate(math.nan, math.nan, points, math.nan, math.nan)
    base = point_cost(loaded.scenario)
    events, tasks, output, memory = base.events, base.tasks, base.output, base.memory
    for key, values in axes.items():
        costs = [point_cost(with_values(loaded, {key: v})) for v in values]
        events *= sum(c.events for c in costs) / base.events
        tasks *= sum(c.tasks for c in costs) / base.tasks
        output *= sum(c.output for c in costs) / base.output
        memory *= max(c.memory for c in costs) / base.memory
    return Estimate(events, tasks, points, memory * max(1, min(parallel, tasks)), output)


def check(est: Estimate, force: bool = False, file: str = "<config>") -> None:
    """ConfigError (exit 2) naming the estimate and the limits it exceeds, unless ``force``."""
    over = est.over()
    if over and not force:
        raise ConfigError("too big to run: estimated " + "; ".join(over), file=file,
                          allowed="fewer connections, a shorter duration, fewer replications or grid points "
                                  "(limits in sim/execution/cost.py, docs/performance.md), or --force to run it anyway")

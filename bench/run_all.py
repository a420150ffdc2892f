"""Run every benchmark and regenerate docs/performance.md.

    python bench/run_all.py               # about 13 minutes on the 2-core reference machine
    python bench/run_all.py --dask-exact  # also the exact 1,000,000-connection day on Dask (python
                                          # bench/dask_exact.py: about 20 CPU-minutes more); without
                                          # the flag, that section of docs/performance.md is kept as is
    python bench/run_all.py --fleet-coverage  # also the 40 samples of a 100,000-connection day whose
                                          # intervals are checked against its full run (about 12
                                          # minutes more); kept as is without the flag

Each figure in docs/performance.md comes from this command; nothing there is typed by hand.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sim.model.scenario import CHUNK_SLOTS  # noqa: E402


def _bench(script: str, *args: str, pure: bool = False) -> dict:
    env = dict(os.environ)
    env.pop("SIM_PURE", None)
    if pure:
        env["SIM_PURE"] = "1"
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--out", tmp.name], check=True,
                       cwd=ROOT, env=env)
        return json.loads(Path(tmp.name).read_text())


def _target(ok: bool) -> str:
    return "met" if ok else "**not met**"


def main() -> int:
    core = _bench("core.py", "--connections", "10000", "--duration", "24h")
    core2 = _bench("core.py", "--connections", "10000", "--duration", "24h", "--workers", "2")
    plain = _bench("core.py", "--connections", "10000", "--duration", "24h", pure=True)
    big = _bench("core.py", "--connections", "100000", "--duration", "24h")
    sweep = _bench("sweep_scaling.py", "--points", "16")
    sweep64 = _bench("sweep_scaling.py", "--points", "64", "--connections", "200")
    mem = _bench("memory.py", "--connections", "100000", "--duration", "1h", "--chunk-slots", str(CHUNK_SLOTS))
    mem_whole = _bench("memory.py", "--connections", "100000", "--duration", "1h")
    cost = _bench("cost_check.py")
    pcap = _bench("pcap_inspect.py", "--size", "1GB")
    pcapng = _bench("pcap_inspect.py", "--size", "200MB", "--format", "pcapng")
    pcap_open = _bench("pcap_inspect.py", "--open-flows", "300000")
    storm = _bench("storm.py", "--ports", "55000", "--connections", "100000")
    storm_plain = _bench("storm.py", "--ports", "55000", "--connections", "100000", pure=True)
    cpu = platform.processor() or platform.machine()
    rows = "\n".join(
        f"| {c['connections']:,} | {c['wall_s']} s | {c['events']:,} | {c['events_per_s']:,} | "
        f"{c['bare_simpy_events_per_s']:,} | {c['ratio_to_bare']} | {c['events_per_connection_hour']} | "
        f"{c['events_per_essential_event']} |" for c in (core, big))
    text = f"""# Performance

Regenerate this page with `python bench/run_all.py` (last run {date.today().isoformat()}, Python
{platform.python_version()}, {cpu}, {_cores()} cores; about 13 minutes, most of it the
100,000-connection day). Timing claims live here, not in unit tests.

## One scenario at fleet scale: `python bench/core.py --connections N --duration 24h`

`configs/nlb.yaml` (Istio gateway behind an NLB, keepalive 300/20/4, exponential 10-minute request
gaps, HZ=250 wheel timers) over 24 h simulated, one process on one core. Core: {core['core']}.
`run_one` simulates a fleet of independent slots {CHUNK_SLOTS:,} client slots at a time, one chunk
after another, and merges the records: the records are the same as with the whole fleet at once
(`tests/test_scenarios.py::test_a_fleet_simulated_in_chunks_gives_the_same_records`), but a chunk's
state stays in the CPU caches (`CHUNK_SLOTS` in `sim/model/scenario.py` gives the measurements
behind the size). `configs/nlb.yaml`'s HTTP listener pools Envoy's upstream connections, one pool
per worker (`envoy.concurrency`, 2), so its slots are independent only across workers: it runs as
one world per worker, {core['connections'] // 2:,} slots each
(`tests/test_envoy_pools.py::test_a_pooled_fleet_runs_a_world_per_envoy_worker_with_the_records_of_the_whole`),
and an event costs more than in a chunk of {CHUNK_SLOTS:,}: the state of thousands of slots no
longer fits in the caches (docs/model.md, "Envoy upstream pools").

| connections | wall time | events | events/s (model) | events/s, bare SimPy loop with as many processes | \
ratio | events per connection-hour | events per essential event |
|---|---|---|---|---|---|---|---|
{rows}

The same 10,000-connection day on the plain-Python core (`SIM_PURE=1`, same sources, not
compiled): **{plain['wall_s']} s**, so the compiled core is {plain['wall_s'] / core['wall_s']:.2f}× as fast.
`pip install` compiles `sim/model` with mypyc; `tests/test_native.py` checks that both cores give
identical records, and CI runs every test on both.

The same 10,000-connection day with the fleet split over both cores (`python bench/core.py --workers 2`,
identical records): **{core2['wall_s']} s**.

*Essential events* are the issue's floor, counted from each run's own records
(`bench/core.py: essential_events`): per TCP connection its handshake; per request on each leg the
request, the response and an ACK for each; per client request the timer that sends it; per
keepalive probe the timer firing, the probe and its answer. The model needs fewer events than
that: pure ACKs are applied when their receiver next acts instead of as events; loss-probe timers
are queued only when a segment is lost; fixed-length request timeouts (Envoy's route timeout) share
one queue per run; the keepalive expiry one interval after an answered probe, whose outcome (a
re-arm) is known when the probe is sent, is kept virtual; and nothing is queued past the end of the
run (docs/model.md, "How the simulator saves work").

## Sweep scaling: `python bench/sweep_scaling.py --points 16`

A 16-point sweep of `configs/nlb.yaml` ({sweep['connections']} connections, {sweep['duration']} each, one
replication per point), process executor:

| workers | wall time |
|---|---|
| 1 | {sweep['wall_s_1_worker']} s |
| 2 | {sweep['wall_s_2_workers']} s |
| speed-up | {sweep['speedup']}× |

And 64 points (`python bench/sweep_scaling.py --points 64 --connections 200`): 1 worker
{sweep64['wall_s_1_worker']} s, 2 workers {sweep64['wall_s_2_workers']} s, speed-up {sweep64['speedup']}×.

## An idle fleet, and memory: `python bench/memory.py --connections 100000 --duration 1h`

`configs/fleet-idle.yaml`: {mem['connections']:,} connections through Envoy (so 200,000 TCP
connections, 400,000 sockets) that send one request and then only keepalives, all open for the
whole hour ({mem['wall_s']} s wall, {mem['core']} core). Peak RSS {mem['peak_rss_mib']} MiB against
{mem['baseline_rss_mib']} MiB for one connection, i.e. **{mem['bytes_per_connection']:,} bytes per open
connection**, both legs and the per-connection records included, as `run_one` runs it (chunks of
{CHUNK_SLOTS:,} slots; the records of every finished chunk are held).

With the whole fleet in memory at once (`python bench/memory.py --chunk-slots 0`), which measures
the model's state per connection: peak RSS {mem_whole['peak_rss_mib']} MiB, **{mem_whole['bytes_per_connection']:,}
bytes per open connection**. The compiled core boxes every float it puts into the record columns,
which the plain-Python core shares with the model's objects; that is most of the difference from the
plain core's figure.

{cost_section(cost)}
{pcap_section(pcap, pcapng, pcap_open)}
{storm_section(storm, storm_plain)}
## Targets (issue 8)

| target | figure | |
|---|---|---|
| 10,000 connections × 24 h on one core in ≤ 60 s | {core['wall_s']} s | {_target(core['wall_s'] <= 60)} |
| 100,000 connections × 24 h on one core in ≤ 10 minutes | {big['wall_s']} s | \
{_target(big['wall_s'] <= 600)} |
| events within 2× of the essential count | {core['events_per_essential_event']}× | \
{_target(core['events_per_essential_event'] <= 2)} |
| ≤ 4 KB per open connection at 100,000 connections | {mem['bytes_per_connection']:,} B | \
{_target(mem['bytes_per_connection'] <= 4096)} |
| 2 workers ≥ 1.8× of 1 worker on the 64-point sweep | {sweep64['speedup']}× | \
{_target(sweep64['speedup'] >= 1.8)} |

The analytic screening (`sweep --method analytic`) is checked against the simulator on every
deterministic test case by `pytest tests/test_analytic.py`, not here: it is a correctness claim.
"""
    text += pcap_targets(pcap, pcap_open)
    text += fleet_section(_bench("fleet.py"), _bench("fleet.py", "--replicas", "1000"))
    text += coverage_section(_bench("fleet.py", "--coverage", "40", "--connections", "100000", "--sample", "5000")
                             if "--fleet-coverage" in sys.argv[1:] else None)
    text += dask_exact_section(_bench("dask_exact.py") if "--dask-exact" in sys.argv[1:] else None)
    (ROOT / "docs" / "performance.md").write_text(text)
    print(text)
    return 0


def pcap_section(pcap: dict, pcapng: dict, pcap_open: dict) -> str:
    """The ``inspect CAPTURE.pcap`` section, from ``bench/pcap_inspect.py``'s figures."""
    return f"""## `inspect CAPTURE.pcap`: `python bench/pcap_inspect.py --size 1GB`

The script builds a libpcap capture of Ethernet/IPv4/TCP packets ({pcap['capture_bytes']:,} bytes,
{pcap['packets']:,} packets, {pcap['flows_built']:,} connections to one gateway: requests, responses,
keepalive probes and their answers, retransmissions, LB resets and reconnections; the script's
docstring has the mix), then times `{pcap['command']}` in a child process, start-up included.

| capture | packets | wall time | CPU time | packets/s (wall) | packets/s (CPU) | peak RSS |
|---|---|---|---|---|---|---|
| 1 GB pcap | {pcap['packets']:,} | {pcap['wall_s']} s | {pcap['cpu_s']} s | {pcap['packets_per_s_wall']:,} | \
{pcap['packets_per_s_cpu']:,} | {pcap['peak_rss_mib']} MiB |
| 200 MB pcapng (`--format pcapng`) | {pcapng['packets']:,} | {pcapng['wall_s']} s | {pcapng['cpu_s']} s | \
{pcapng['packets_per_s_wall']:,} | {pcapng['packets_per_s_cpu']:,} | {pcapng['peak_rss_mib']} MiB |

Its summary line: `{pcap['summary']}`. Memory does not grow with the capture: the file is read in
1 MiB chunks and a closed flow is written out and forgotten 60 s after it closed; what stays is the
open flows, up to `--max-flows` (default 200,000), on top of the ~115 MiB the interpreter and the
package take. The worst case, `python bench/pcap_inspect.py --open-flows 300000` (connections that
open and never close): {pcap_open['flows_reported']:,} flows tracked, {pcap_open['untracked_packets']:,}
packets of the others counted but not analysed, peak RSS {pcap_open['peak_rss_mib']} MiB.
The wall time also counts time the process waited for a CPU: the load average was
{pcap.get('load_avg_1min_after', '?')} on {pcap.get('cpus', '?')} CPUs at the end of the 1 GB run.
Packets/s by CPU time is the figure that does not depend on other load.
"""


def pcap_targets(pcap: dict, pcap_open: dict) -> str:
    """The issue 15 targets for ``inspect CAPTURE.pcap``."""
    return f"""
## Targets (issue 15)

| target | figure | |
|---|---|---|
| a 1 GB capture in under 500 MB RSS | {pcap['peak_rss_mib']} MiB | {_target(pcap['peak_rss_mib'] < 500)} |
| the flow table full (`--open-flows 300000`) under 500 MB RSS | {pcap_open['peak_rss_mib']} MiB | \
{_target(pcap_open['peak_rss_mib'] < 500)} |
| ≥ 200,000 packets/s | {pcap['packets_per_s_cpu']:,} by CPU time, {pcap['packets_per_s_wall']:,} by wall time | \
{_target(pcap['packets_per_s_cpu'] >= 200000)} by CPU time, \
{_target(pcap['packets_per_s_wall'] >= 200000)} by wall time |
"""


def storm_section(storm: dict, plain: dict) -> str:
    """The storms section, from ``bench/storm.py --ports``'s figures on both cores."""
    return f"""## Storms: `python bench/storm.py --ports 55000 --connections 100000`

A reconnect storm against a NAT's port budget (issue 16): {storm['connections']:,} client slots through
an AWS NAT Gateway (`aws-nat-gateway`, {storm['ports']:,} ports per destination, reuse 0 s), requests
every 300 s, {storm['duration']} simulated. The fleet opens at once, so {storm['connections'] - storm['ports']:,}
slots find no port: their SYNs are dropped and each connect ends `connect_timeout` after 131 s; at
450 s the gateway forgets every flow (`storm: {{kind: drop_all}}`), each slot that had one is reset
at its next request and reconnects through the same budget, against the slots still retrying. After
every failed connect or death a slot waits as `client.reconnect: {{policy: backoff, base: 10s, cap:
120s, jitter: full}}` says. The fleet shares one budget, so it is simulated whole, in one
process on one core. Wall time includes waiting for a CPU; CPU time does not.

| core | wall time | CPU time | events | events/s (wall) | connect failures | SYNs refused | ports peak |
|---|---|---|---|---|---|---|---|
| {storm['core']} | {storm['wall_s']} s | {storm['cpu_s']} s | {storm['events']:,} | {storm['events_per_s']:,} | \
{storm['connect_failures']:,} | {storm['connects_rejected']:,} | {storm['peak']:,} |
| {plain['core']} | {plain['wall_s']} s | {plain['cpu_s']} s | {plain['events']:,} | {plain['events_per_s']:,} | \
{plain['connect_failures']:,} | {plain['connects_rejected']:,} | {plain['peak']:,} |

Target (issue 16): a 100,000-slot storm with full-jitter backoff against a 55,000-port budget in
under 2 minutes on one core: {storm['cpu_s']} s CPU, {storm['wall_s']} s wall on the compiled core \
({_target(storm['cpu_s'] < 120)} by CPU time, {_target(storm['wall_s'] < 120)} by wall time).
"""


def cost_section(cost: dict) -> str:
    """The cost-estimate section, from ``bench/cost_check.py``'s figures."""
    from sim.execution import cost as c

    rows = "\n".join(f"| `{name}` | {r['measured']:,} | {r['estimate']:,} | {r['ratio']} |"
                      for name, r in cost["configs"].items())
    return f"""## Cost estimate and limits: `python bench/cost_check.py`

`run` and `sweep` estimate what a request will cost before simulating anything
(`sim/execution/cost.py`) and refuse, with exit code 2 and one line giving the estimate and the limit,
what is over a limit; `--force` runs it anyway. For one replication of a scenario:

```
events = connections x (opens x legs x {c.EVENTS_PER_CONNECTION:g}
                        + duration x (legs x {c.EVENTS_PER_REQUEST:g} / cycle
                                      + {c.EVENTS_PER_PROBE:g} x probes per s (sum of 1 / TCP_KEEPIDLE, keepalive on)
                                      + {c.EVENTS_PER_PING:g} / client.ping_interval
                                      + {c.EVENTS_PER_LB_KEEPALIVE:g} x 2 / a terminating LB's keepalive period))
cycle  = mean request gap + mean service time (cut at a shorter request or route timeout)
         + 2 x one_way_delay x hops
opens  = 1 + duration / lifetime: lifetime = client.pool.max_lifetime, or the cycle when an idle
         timeout shorter than the mean gap (or a request timeout) closes connections; else 1
memory = min(connections, {c.SLOTS_AT_ONCE:,}) x {c.BYTES_PER_OPEN_CONNECTION:,} B (the slots simulated at once)
         + connections x opens x legs x {c.BYTES_PER_RECORD:,} B (records) + duration x {c.BYTES_PER_SECOND} B
         + minutes x {c.BYTES_PER_MINUTE} B (series)
output = connection rows x {c.OUTPUT_BYTES_PER_ROW} B + minutes x {c.OUTPUT_BYTES_PER_MINUTE} B \
+ {c.OUTPUT_BYTES_PER_TASK:,} B per run
```

`legs` counts the TCP connections per client connection (the client's, Envoy's upstream one, a
terminating LB's back end); a `run` holds the records of every replication (`run --executor dask`:
one chunk of at most 10,000 slots per worker, its memory scaled down to that), a sweep's memory is its
largest run times the runs at once. A sweep is estimated without expanding its grid: with c(v) the
cost of the config with one axis set to v, the total is c(config) × the product over the axes of
(sum over v of c(v) / c(config)), exact when the cost is a product of per-axis factors; the grid's
size is the product of the axis lengths. Zero gaps with a tiny `one_way_delay` make the cycle tiny
and the estimate huge, as the run would be.

| limit | value |
|---|---|
| simulation events (`MAX_EVENTS`) | {c.MAX_EVENTS:.0e}: about {c.MAX_EVENTS / c.EVENTS_PER_S / 3600:.1f} h on one \
core at {c.EVENTS_PER_S:,.0f} events/s |
| memory (`MAX_MEMORY_BYTES`) | {c.MAX_MEMORY_BYTES / 2**30:g} GiB |
| results (`MAX_OUTPUT_BYTES`) | {c.MAX_OUTPUT_BYTES / 1e9:g} GB |
| grid points (`MAX_GRID_POINTS`) | {c.MAX_GRID_POINTS:,} |
| runs, grid points × replications (`MAX_TASKS`) | {c.MAX_TASKS:,} |

The limits admit `run configs/nlb.yaml --set connections=1000000 --set duration=24h --set
replications=1` (`tests/test_cli_cost.py`). The estimate against the events counted, one replication
of each shipped config with {cost['connections']} connections for {cost['duration']}:

| config | measured events | estimated | ratio |
|---|---|---|---|
{rows}
"""


DASK_HEADING = "## Exact runs on Dask"
COVERAGE_HEADING = "### How often the intervals cover the full run"
#: the flag that measures each section kept as it is without it
FLAGS = {DASK_HEADING: "--dask-exact", COVERAGE_HEADING: "--fleet-coverage"}


def kept_section(heading: str) -> str:
    """The section of docs/performance.md under ``heading`` as it is now (a benchmark too long for
    every run was not asked for), or a line saying how to measure it."""
    old = (ROOT / "docs" / "performance.md").read_text()
    start = old.find(heading)
    if start < 0:
        return f"\n{heading}\n\nNot measured yet: `python bench/run_all.py {FLAGS[heading]}`.\n"
    end = old.find("\n## ", start + 1)
    return "\n" + old[start:] if end < 0 else "\n" + old[start:end + 1]


def dask_exact_section(fig: dict | None) -> str:
    """The exact Dask run's section, from ``bench/dask_exact.py``'s figures; without them (no
    ``--dask-exact``), the section docs/performance.md has now, kept as it is."""
    if fig is None:
        return kept_section(DASK_HEADING)
    d = fig["duration_s"]
    duration = f"{d / 3600:g}h" if d % 3600 == 0 else f"{d:g}"
    workers = ", ".join(f"{mb:,} MB" for mb in fig["worker_peak_rss_mb"])
    at_start = ", ".join(f"{mb:,} MB" for mb in fig["worker_rss_at_start_mb"])
    return f"""
{DASK_HEADING}

`python bench/dask_exact.py --connections {fig['slots']} --duration {duration}`:
`python -m sim run --executor dask --out DIR` (issue 17,
[outputs.md](outputs.md#exact-runs-on-a-dask-cluster-run---executor-dask)) on {fig['slots']:,} slots
of `configs/nlb.yaml`'s traffic for {fig['duration_s'] / 3600:g} h (one replication, with a tcp_proxy
listener: an HTTP one pools its upstream connections per Envoy worker, and a pooled fleet is split
by whole workers, so nlb.yaml's 2 would make 2 chunks of half the fleet each), over a LocalCluster
of {fig['workers']} worker processes with one thread each, on this machine's cores. {fig['chunks']} chunks of at
most 10,000 slots; each
chunk's rows are written as a Parquet part as it arrives, then the parts are streamed into
connections.parquet. Core: {fig['core']}.

| slots × time | wall time (simulate + merge) | events | connection rows | connections.parquet | \
peak RSS per worker | worker RSS at start | client peak RSS (with the scheduler) |
|---|---|---|---|---|---|---|---|
| {fig['slots']:,} × {fig['duration_s'] / 3600:g} h | {fig['wall_s']} s ({fig['simulate_wall_s']} s + \
{fig['merge_wall_s']} s) | {fig['events']:,} | {fig['connection_rows']:,} | {fig['connections_parquet_mb']} MB | \
{workers} | {at_start} | {fig['client_peak_rss_mb']:,} MB |

Its summary: {fig['silent_drops']} silent drops, {fig['failed_requests']} failed requests,
{fig['keepalive_pps']} keepalive packets/s, {fig['new_flows']:,} new flows, flow peak
{fig['lb_active_flows_peak']:,}, mean {fig['lb_active_flows_mean']:,} flows, worst second
{fig['new_flows_peak_per_s']:g} new flows. A worker's peak is that of one chunk's simulation and
rows; the client's is the scheduler's, the per-second series and two float64 per flow (for the exact
flow peak), not the rows. The wall time includes waiting for a CPU when other processes run.
"""


def _cores() -> int:
    import os

    return os.cpu_count() or 1



#: the figures bench/fleet.py reports with their intervals
FLEET_FIGURES = ("silent_drops", "failed_requests", "keepalive_pps", "new_flows", "lb_active_flows_mean",
                 "lb_active_flows_peak", "new_flows_peak_per_s", "expected_drops_per_day", "nlcu_mean", "nlcu_peak")


def _estimates(fig: dict) -> str:
    return "\n".join(f"| `{f}` | {fig[f]:,} | [{fig[f + '_ci95'][0]:,}, {fig[f + '_ci95'][1]:,}] |"
                     for f in FLEET_FIGURES)


def fleet_section(fig: dict, pooled: dict) -> str:
    """A 10,000,000-connection day answered from a sample (``bench/fleet.py``), with a tcp_proxy
    listener and with nlb.yaml's HTTP listener behind gateway pods (``--replicas``)."""
    rows = _estimates(fig)
    return f"""
## Sampled fleets: `python bench/fleet.py`

{fig['fleet_connections']:,} connections × {fig['duration_s'] / 3600:g} h of `configs/nlb.yaml`'s traffic
(issue 17), answered from a seeded sample of {fig['sampled_connections']:,} slots, with a tcp_proxy
listener: an HTTP one shares Envoy's upstream pools per worker, a sample then takes whole workers,
and the 2 workers of nlb.yaml's one Envoy are the whole fleet (docs/model.md, "Sampled fleets"; the
fleet behind many gateway pods is below). One process on one core. Core: {fig['core']}.
**{fig['wall_s']} s** wall (the issue's target: 5 minutes or less, {_target(fig['wall_s'] <= 300)}), peak RSS \
{fig['peak_rss_mb']:,} MB.

| figure | fleet estimate | 95 % interval |
|---|---|---|
{rows}

### Behind gateway pods: `python bench/fleet.py --replicas {pooled['envoy_replicas']}`

The same fleet with nlb.yaml's own HTTP listener (Envoy's upstream pools) behind
{pooled['envoy_replicas']:,} Envoy instances (`envoy.replicas`) of 2 workers each, so
{pooled['fleet_connections'] // (2 * pooled['envoy_replicas']):,} slots share a pool. A sample takes whole
workers ({pooled['sampled_connections']:,} slots); their rows, upstream ones included, are the full run's
(docs/model.md, "Sampled fleets"). **{pooled['wall_s']} s** wall ({_target(pooled['wall_s'] <= 300)}),
peak RSS {pooled['peak_rss_mb']:,} MB.

| figure | fleet estimate | 95 % interval |
|---|---|---|
{_estimates(pooled)}
"""


def coverage_section(fig: dict | None) -> str:
    """How often the sampled intervals cover the full run (``bench/fleet.py --coverage``); kept as it
    is without ``--fleet-coverage``."""
    if fig is None:
        return kept_section(COVERAGE_HEADING)
    rows = "\n".join(f"| `{f}` | {fig['full_' + f]:,} | {fig['covered_' + f]} of {fig['samples']} | "
                      f"{_target(fig['covered_' + f] >= 0.9 * fig['samples'])} |" for f in FLEET_FIGURES)
    return f"""
{COVERAGE_HEADING}

`python bench/fleet.py --coverage {fig['samples']} --connections {fig['fleet_connections']} --sample \
{fig['sampled_connections']}`: the same {fig['duration_s'] / 3600:g} h day, run once whole
({fig['full_run_wall_s']} s), then {fig['samples']} samples of {fig['sampled_connections']:,} slots of it,
seeded 0 to {fig['samples'] - 1}, each with its intervals ({fig['samples_wall_s']} s for all of them). The
issue asks that each headline figure's 95 % interval contain the full run's value at least 36 times
in 40. A figure the full run never saw (no silent drop, no failed request) is covered by the rule of
three; intervals of observed drops are checked on fleets that drop, in CI (`tests/test_sampling.py`).

| figure | full run | intervals containing it | target |
|---|---|---|---|
{rows}
"""


if __name__ == "__main__":
    sys.exit(main())

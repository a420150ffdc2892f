"""Envoy's upstream pools (issue 16 point 3): HTTP/1.1 pools per worker reuse idle connections
(the most recently used first), open one when none is ready, close one after
max_requests_per_connection and after the upstream idle timeout; HTTP/2 multiplexes streams onto
one connection per worker until max_concurrent_streams. Upstream flows and probes are the pool's.
Closed-form cases, on both engines."""

from __future__ import annotations

import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.execution.simulate import slots_independent
from sim.facts.names import CONN_ID_STRIDE
from sim.metrics.summary import summarize_one
from sim.spec import Shortcuts
from tests.test_shortcuts import _devices, assert_same_run, same

HOP_S = 0.001


def _raw(n: int, *, gap: float = 100.0, service: float = 0.0, ramp: float = 60.0, duration: float = 1000.0,
         envoy: dict | None = None, upstream: dict | None = None) -> dict:
    """``n`` slots with fixed gaps through Envoy (HTTP listener, no timers of its own that fire)."""
    ups = {"keepalive": "off", "idle_timeout": 0, **(upstream or {})}
    env = {"listener": {"route_timeout": 0, "stream_idle_timeout": 0, "idle_timeout": 0}, **(envoy or {})}
    env["upstream"] = {**ups, **env.get("upstream", {})}
    return {"duration": duration, "connections": n, "kernel": {"hz": 1000, "timers": "exact"},
            "network": {"one_way_delay": HOP_S}, "client": {"keepalive": "off"}, "envoy": env,
            "upstream": {"keepalive": "off"},
            "traffic": {"ramp": ramp, "request_gap": {"fixed": gap}, "service_time": {"fixed": service}}}


def _run(raw: dict, shortcuts: Shortcuts | None = None, chunk_slots: int | None = None):
    sc = Scenario.model_validate(raw)
    kw = {} if chunk_slots is None else {"chunk_slots": chunk_slots}
    rec = run_one(sc, 1, shortcuts=shortcuts, **kw)
    return summarize_one(rec, sc.duration), rec


def _rows(rec, leg: str) -> list[dict]:
    c = rec.columns
    return [{k: v[i] for k, v in c.items()} for i in range(len(c["conn_id"])) if c["leg"][i] == leg]


def test_sparse_http1_traffic_shares_one_connection_per_worker():
    """20 slots, a request every 100 s each, 3 s apart, answered at once: no two overlap, so each of
    the 2 workers opens one connection and reuses it for every request of its 10 slots."""
    s, rec = _run(_raw(20))
    up = _rows(rec, "upstream")
    assert len(up) == 2
    assert [r["conn_id"] for r in up] == [1, CONN_ID_STRIDE + 1]  # opened for slots 0 and 1
    assert sum(r["requests"] for r in up) == s["requests"] == 20 * 10
    assert all(r["requests"] == 100 for r in up)
    assert len(_rows(rec, "downstream")) == 20  # client -> Envoy stays one connection per client


def test_the_most_recently_used_idle_connection_is_reused_first():
    """Three slots open 1 s apart, each request served in 5 s: three connections A, B, C, ready
    again at 5, 6 and 7 s. Slot 0's next request (105 s) takes C, the front of Envoy's ready list
    (LIFO), not A."""
    _, rec = _run(_raw(3, ramp=3.0, service=5.0, duration=105.5, envoy={"concurrency": 1}))
    by_id = {r["conn_id"]: r["requests"] for r in _rows(rec, "upstream")}
    assert by_id == {1: 1, CONN_ID_STRIDE + 1: 1, 2 * CONN_ID_STRIDE + 1: 2}


def test_max_requests_per_connection_closes_and_the_next_request_opens_a_new_one():
    s, rec = _run(_raw(1, duration=950.0, envoy={"concurrency": 1},
                       upstream={"max_requests_per_connection": 3}))
    up = _rows(rec, "upstream")
    assert s["requests"] == 10
    assert [r["requests"] for r in up] == [3, 3, 3, 1]
    assert all(r["client_closed_at_s"] == pytest.approx(r["opened_at_s"] + 200.0 + 4 * HOP_S, abs=0.01)
               for r in up[:3])


def test_the_upstream_idle_timeout_closes_a_pool_connection():
    """Idle timeout 50 s, a request every 100 s: every request finds the pool empty."""
    s, rec = _run(_raw(1, duration=950.0, envoy={"concurrency": 1}, upstream={"idle_timeout": 50}))
    up = _rows(rec, "upstream")
    assert len(up) == s["requests"] == 10
    assert all(r["requests"] == 1 for r in up)
    # idle from the answer: handshake and request + answer, two hops each way
    # (the last one, opened at 900 s, is still open at the end)
    assert all(r["client_closed_at_s"] == pytest.approx(r["opened_at_s"] + 50.0 + 4 * HOP_S) for r in up[:-1])
    assert {r["outcome"] for r in up[:-1]} == {"closed_idle"}


def test_http2_multiplexes_one_connection_per_worker():
    """20 slots at once, each request served in 30 s: every request is in flight together. HTTP/1.1
    needs 20 connections; HTTP/2 one per worker."""
    raw = _raw(20, ramp=0.0, service=30.0, duration=100.0)
    _, h1 = _run(raw)
    assert len(_rows(h1, "upstream")) == 20
    raw["envoy"]["upstream"]["protocol"] = "http2"
    s, h2 = _run(raw)
    up = _rows(h2, "upstream")
    assert len(up) == 2 and sum(r["requests"] for r in up) == s["requests"]


def test_http2_opens_another_connection_at_max_concurrent_streams():
    """10 streams at once per worker, 3 per connection: ceil(10 / 3) = 4 connections per worker."""
    raw = _raw(20, ramp=0.0, service=30.0, duration=100.0,
               upstream={"protocol": "http2", "max_concurrent_streams": 3})
    _, rec = _run(raw)
    up = _rows(rec, "upstream")
    # worker 0 serves slots 0, 2, ..., 18: slot 0's stream opens a connection good for 3, slots 2
    # and 4 wait for it, slot 6's opens the next (shouldCreateNewConnection), and so on
    assert [(r["conn_id"] // CONN_ID_STRIDE, r["requests"]) for r in up] == [
        (0, 3), (1, 3), (6, 3), (7, 3), (12, 3), (13, 3), (18, 1), (19, 1)]


def test_upstream_flows_and_keepalive_probes_are_the_pools():
    """An IPVS-like device on the upstream leg sees the pool's 2 connections, not 20, and the
    keepalive probes it counts are those of these 2 connections."""
    raw = _raw(20, gap=1000.0, duration=3000.0, upstream={"keepalive": {"idle": 60, "interval": 10, "count": 3}})
    raw["upstream"]["lb"] = {"profile": "linux-conntrack"}
    s, rec = _run(raw)
    up = _rows(rec, "upstream")
    assert len(up) == 2
    dev = next(d for d in s["devices"] if d["leg"] == "upstream")
    assert dev["flows_peak"] == 2 and dev["new_flows"] == 2
    probes = sum(r["keepalive_probes"] for r in up)
    assert probes > 0 and dev["keepalive_packets"] == 2 * probes  # each probe and its ACK


def test_a_pooled_fleet_is_simulated_whole():
    raw = _raw(6, ramp=0.0, service=5.0, duration=300.0)
    assert not slots_independent(Scenario.model_validate(raw))
    tcp = _raw(6)
    tcp["envoy"]["listener"]["protocol"] = "tcp_proxy"
    assert slots_independent(Scenario.model_validate(tcp))
    (_, whole), (_, chunked) = _run(raw, chunk_slots=0), _run(raw, chunk_slots=2)
    assert same(whole.columns, chunked.columns)  # NaN-aware: compiled, each NaN is a float of its own


@pytest.mark.parametrize("protocol", ["http1", "http2"])
def test_a_pooled_fleet_runs_a_world_per_envoy_worker_with_the_records_of_the_whole(protocol):
    """The slots of one worker share its pool, those of two workers share nothing: a pooled fleet
    larger than a chunk runs as one world per worker (``worker_groups``) and gives the whole fleet's
    records, while slots cut any other way do not (the pools couple them)."""
    from sim.config.resolve import world_spec
    from sim.model.groups import worker_groups
    from sim.model.scenario import merge

    raw = _raw(12, gap=7.0, ramp=12.0, service=1.0, duration=200.0,
               envoy={"concurrency": 3}, upstream={"protocol": protocol, "max_concurrent_streams": 2})
    sc = Scenario.model_validate(raw)
    assert worker_groups(world_spec(sc), range(12)) == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    (_, whole), (_, grouped) = _run(raw, chunk_slots=0), _run(raw, chunk_slots=5)
    assert grouped.run["events"] != whole.run["events"]  # three worlds ran, not one
    for name in whole.columns:
        assert same(whole.columns[name], grouped.columns[name]), name
    assert whole.counters == grouped.counters
    assert sorted(whole.flow_intervals) == sorted(grouped.flow_intervals)
    assert same(_devices(whole.series), _devices(grouped.series))
    halves = merge([run_one(sc, 1, slots=range(a, a + 6), chunk_slots=0) for a in (0, 6)])
    assert not same(whole.columns, halves.columns)


def test_a_pooled_fleet_over_two_processes_runs_a_worker_each_with_the_records_of_the_whole(monkeypatch):
    """``run --workers 2`` (fleet_pieces) and ``run_split`` hand each Envoy worker's slots to a process."""
    from sim.execution import runner
    from sim.model.scenario import merge

    raw = _raw(12, gap=7.0, ramp=12.0, service=1.0, duration=200.0, envoy={"concurrency": 3})
    sc = Scenario.model_validate(raw)
    assert runner.fleet_pieces(sc, range(12), 2) == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8, 11]]
    assert runner.fleet_pieces(sc, range(12), 1) == [range(12)]  # one process, a small fleet: one piece
    (_, whole) = _run(raw, chunk_slots=0)
    pieces = []
    from sim.execution import executors

    real = executors.run_all

    def spy(fn, tasks, executor, workers, *rest):
        pieces.extend(t[2] for t in tasks)
        return real(fn, tasks, "serial")

    monkeypatch.setattr("sim.execution.executors.run_all", spy)
    for rec in (runner.run_replication(sc, 1, workers=2), runner.run_split(sc, 1, workers=2)):
        assert same(whole.columns, rec.columns)
        assert whole.counters == rec.counters
    assert len(pieces) == 3
    assert not same(whole.columns, merge([run_one(sc, 1, slots=range(a, a + 6)) for a in (0, 6)]).columns)


def test_a_pooled_slots_trace_runs_its_envoy_workers_slots_again(monkeypatch):
    from sim.execution import tasks
    from sim.execution.simulate import slots_with

    raw = _raw(12, gap=7.0, ramp=12.0, service=1.0, duration=200.0, envoy={"concurrency": 3})
    sc = Scenario.model_validate(raw)
    assert slots_with(sc, 4) == [1, 4, 7, 10]
    limited = _raw(12)
    limited["lb"] = {"profile": "linux-conntrack", "idle_timeout": 25, "max_flows": 5}
    assert slots_with(Scenario.model_validate(limited), 4) is None
    runs = []
    real = tasks.run_one
    monkeypatch.setattr(tasks, "run_one", lambda *a, **k: runs.append(k["slots"]) or real(*a, **k))
    events = tasks.trace_one(sc, 1, 4 * CONN_ID_STRIDE)
    assert runs == [[1, 4, 7, 10]]
    whole = run_one(sc, 1, trace_conn=4 * CONN_ID_STRIDE, chunk_slots=0).trace
    assert events and events == whole


@pytest.mark.parametrize("protocol", ["http1", "http2"])
def test_the_reference_engine_gives_the_same_records_for_a_pool(protocol):
    raw = _raw(6, gap=40.0, ramp=5.0, service=3.0, duration=400.0,
               upstream={"protocol": protocol, "max_requests_per_connection": 4, "idle_timeout": 30,
                         "keepalive": {"idle": 20, "interval": 5, "count": 2}, "max_concurrent_streams": 2})
    raw["upstream"]["lb"] = {"profile": "linux-conntrack", "idle_timeout": 25}
    raw["seed"] = 3
    assert_same_run(raw, Shortcuts.none())


def test_the_cost_estimate_holds_a_pooled_fleet_whole():
    """Slots sharing a pool are not chunked, so the memory estimate holds every slot."""
    from sim.execution.cost import point_cost

    pooled = _raw(50_000)
    tcp = _raw(50_000)
    tcp["envoy"]["listener"]["protocol"] = "tcp_proxy"
    assert point_cost(Scenario.model_validate(pooled)).memory > (
        point_cost(Scenario.model_validate(tcp)).memory + 49_000 * 4_000)


#: found by test_flow_table's random scenarios: a stream idle timeout of 2 s = four one-way delays of
#: 0.5 s, so on a freshly opened pool connection the answer comes at the very instant of the timeout
TIED = {"name": "prop", "duration": 7200, "connections": 4, "seed": 1,
        "traffic": {"ramp": 0, "request_gap": {"lognormal": {"median": 5, "sigma": 0.1}}, "service_time": {"fixed": 0}},
        "network": {"one_way_delay": 0.5}, "kernel": {"hz": 250, "timers": "exact"},
        "client": {"keepalive": {"idle": "60s"}, "user_timeout": 5, "request_timeout": 45},
        "upstream": {"keepalive": {"idle": "340s", "count": 8}, "user_timeout": 1, "lb": None},
        "lb": [{"profile": "azure-lb-tcp-reset", "late_packet": "rst_to_sender", "on_expiry": "rst_both",
                "max_flows": 3, "on_full": "rst"}, {"profile": "aws-sg-conntrack", "late_packet": "drop"},
               {"profile": "linux-conntrack", "idle_timeout": 45, "refreshed_by": "any_packet"}],
        "envoy": {"flavor": "envoy", "listener": {"keepalive": "on", "user_timeout": 0, "protocol": "http",
                                                  "idle_timeout": 5, "route_timeout": 0, "stream_idle_timeout": 2},
                  "upstream": {"keepalive": "off", "user_timeout": 200, "idle_timeout": 300, "retry_on_reset": False},
                  "kernel": {"sysctl": {"net.ipv4.tcp_retries2": 12}}}}


def test_a_stream_idle_timeout_tied_with_the_answer_is_ordered_as_on_the_reference_engine():
    """Both engines order the tie alike: the shared timeouts' event keeps the id it would have had
    as an event of its own."""
    assert_same_run(TIED, Shortcuts(shared_request_timeouts=False))

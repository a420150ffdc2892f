"""Huge-but-valid requests are refused up front (exit 2, one line with the estimate and the limit);
--force goes ahead; the 1,000,000-connection day of configs/nlb.yaml is within the limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.config.load import load_config
from sim.execution import cost

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))


@pytest.fixture
def no_simulation(monkeypatch):
    import sim.execution.runner
    import sim.execution.sweep

    def boom(*a, **k):
        raise AssertionError("simulated or expanded a request that should have been refused")

    monkeypatch.setattr(sim.execution.runner, "run_scenario", boom)
    monkeypatch.setattr(sim.execution.sweep, "expand", boom)


def test_a_million_connections_for_a_day_of_nlb_traffic_is_allowed():
    sc = load_config("configs/nlb.yaml", ["connections=1000000", "duration=24h", "replications=1"]).scenario
    est = cost.estimate_run(sc)
    assert est.over() == []
    assert 1e9 < est.events < cost.MAX_EVENTS  # measured: 56.1 events per connection-hour (docs/performance.md)


def test_a_dask_run_is_estimated_a_chunk_per_worker_in_memory():
    """``run --executor dask`` holds one chunk's rows per worker, not the fleet's: the fleet that is
    refused for its memory in one process is not refused for it on Dask."""
    sc = load_config("configs/nlb.yaml", ["connections=10000000", "envoy.listener.protocol=tcp_proxy"]).scenario
    assert any("of memory" in o for o in cost.estimate_run(sc).over())
    streamed = cost.estimate_run(sc, streamed=True)
    assert not any("of memory" in o for o in streamed.over())
    assert streamed.memory_bytes == pytest.approx(cost.point_cost(sc).memory / 1000)  # 10,000 of 10,000,000 slots


def test_a_pooled_dask_run_is_estimated_an_envoy_workers_slots_per_worker_in_memory():
    sc = load_config("configs/nlb.yaml", ["connections=1000000", "envoy.concurrency=4"]).scenario
    streamed = cost.estimate_run(sc, streamed=True)
    assert streamed.memory_bytes == pytest.approx(cost.point_cost(sc).memory / 4)  # a worker's 250,000 slots


def test_the_estimate_is_near_the_measured_event_count():
    from sim.execution import run_one

    sc = load_config("configs/nlb.yaml", ["connections=40", "duration=2h", "replications=1"]).scenario
    measured = run_one(sc, 7).run["events"]
    assert 0.5 < cost.point_cost(sc).events / measured < 3


@pytest.mark.parametrize("sets, words", [
    (["connections=10000000"], "of memory"),
    (["connections=1000000000"], "simulation events"),
    (["connections=1000000000000"], "simulation events"),
    (["replications=1000000000"], "simulation events"),
    (["duration=1.0e+300"], "simulation events"),
    (["traffic.request_gap={fixed: 0s}", "network.one_way_delay=1.0e-300"], "simulation events"),
    (["traffic.request_gap={fixed: 0s}", "network.one_way_delay=0.000001"], "simulation events"),
])
@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_huge_requests_are_refused_with_the_estimate(tmp_path, capsys, no_simulation, sets, words, cmd):
    args = [cmd, "configs/nlb.yaml", *[x for s in sets for x in ("--set", s)]]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()  # refused before anything was written
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    if "too big" not in err:
        # the config's own bounds (what it can represent: ids, runs, clock resolution) got there first
        key = sets[-1].split("=")[0]
        assert f"--set {key}" in err and "(allowed: " in err, err
        assert sets[-1] in ("network.one_way_delay=1.0e-300", "connections=1000000000000",
                            "replications=1000000000", "duration=1.0e+300"), err
        return
    assert "too big to run: estimated" in err and words in err and "limit" in err and "--force" in err


def test_a_million_point_grid_is_refused_before_it_is_expanded(tmp_path, capsys, no_simulation, monkeypatch):
    import sim.execution.grid

    monkeypatch.setattr(sim.execution.grid, "expand", lambda *a: pytest.fail("expanded"))
    fleets, seeds = ", ".join(map(str, range(1, 1001))), ", ".join(map(str, range(1000)))
    grid = f"sweep={{connections: [{fleets}], seed: [{seeds}]}}"
    assert main(["sweep", SMALL, "--set", grid, "--out", str(tmp_path / "o")]) == 2
    assert "1e+06 grid points (limit 100,000)" in capsys.readouterr().err
    assert main(["sweep", SMALL, "--set", grid, "--method", "analytic"]) == 2
    assert "1e+06 grid points (limit 100,000)" in capsys.readouterr().err


def test_a_grid_is_estimated_from_its_axes_without_expanding():
    loaded = load_config(SMALL, ["sweep={connections: [10, 1000000000], conditions: {kernel.hz: [250, 1000]}}"])
    est = cost.estimate_sweep(loaded, parallel=2)
    assert est.points == 4 and est.tasks == 8
    one = cost.point_cost(load_config(SMALL, ["connections=1000000000"]).scenario).events
    assert est.events == pytest.approx(2 * (one + cost.point_cost(load_config(SMALL, ["connections=10"]).scenario)
                                            .events), rel=1e-9)
    assert "simulation events" in " ".join(est.over())


def test_force_goes_ahead():
    sc = load_config("configs/nlb.yaml", ["connections=1000000000"]).scenario
    est = cost.estimate_run(sc)
    with pytest.raises(Exception, match="too big"):
        cost.check(est)
    cost.check(est, force=True)

"""``run --executor dask`` (issue 17 point 6): a fleet's slots in chunks over a Dask cluster give the
serial run's records and summary; each chunk's rows are streamed to Parquet parts, never held by
the client; a fleet whose slots share state, or a sample, is refused with one line."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.cli import main
from sim.config.load import load_config
from sim.execution import run_one
from sim.execution.executors import run_all as real_run_all
from sim.execution.runner import slot_pieces
from sim.metrics.capacity import peak_overlap
from sim.metrics.summary import summarize_one, summary_from
from sim.metrics.totals import ExactSum, RowTotals

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))
# drops (idle 345 s behind a 350 s NLB), zombies and detections on both legs of a tcp_proxy Envoy
SPLITTABLE = ["--set", "envoy.listener.protocol=tcp_proxy", "--set", "envoy.listener.keepalive.idle=345",
              "--set", "connections=40"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _summary(folder: Path) -> dict:
    s = json.loads((folder / "summary.json").read_text())
    s.pop("run")  # events and wall time: the only part that may differ (DESIGN §3)
    return s


def _serially(monkeypatch):
    """The dask executor's work without a cluster: the chunks run one after another, here."""
    import sim.execution.dask_run as dr

    monkeypatch.setattr(dr, "run_all", lambda fn, tasks, executor, workers, scheduler: real_run_all(fn, tasks,
                                                                                                     "serial"))


def test_a_dask_run_on_a_local_cluster_gives_the_serial_runs_records_and_summary(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    assert main(["run", SMALL, *SPLITTABLE, "--executor", "serial", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert main(["run", SMALL, *SPLITTABLE, "--executor", "dask", "--workers", "2", "--out", str(tmp_path / "d"),
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    serial = pd.read_parquet(tmp_path / "s" / "connections.parquet")
    dask = pd.read_parquet(tmp_path / "d" / "connections.parquet")
    assert len(serial) > 200 and serial["silent_drop"].sum() > 50 and set(serial["leg"]) == {"downstream", "upstream"}
    pd.testing.assert_frame_equal(serial, dask)  # every column, every row, in the same order
    assert _summary(tmp_path / "s") == _summary(tmp_path / "d")
    assert not (tmp_path / "d" / "parts").exists()  # merged into connections.parquet, then removed
    assert "silent drops: 124" in text and "zombie" in text


def test_a_pooled_fleet_runs_on_dask_one_envoy_worker_a_chunk_with_the_serial_runs_records(tmp_path, capsys,
                                                                                             monkeypatch):
    """An HTTP listener's slots share their Envoy worker's upstream pool: a chunk is one worker's
    slots, which give exactly their rows of the whole run."""
    import sim.execution.dask_run as dr

    seen = []

    def spy(fn, tasks, executor, workers, scheduler):
        seen.extend(t.slots for t in tasks)
        return real_run_all(fn, tasks, "serial")

    monkeypatch.setattr(dr, "run_all", spy)
    pooled = ["--set", "envoy.concurrency=3", "--set", "envoy.listener.keepalive.idle=345", "--set", "connections=30",
              "--set", "replications=1"]
    assert main(["run", SMALL, *pooled, "--executor", "serial", "--out", str(tmp_path / "s"), "--quiet"]) == 0
    assert main(["run", SMALL, *pooled, "--executor", "dask", "--out", str(tmp_path / "d"), "--quiet"]) == 0
    capsys.readouterr()
    assert sorted(list(s) for s in seen) == [list(range(k, 30, 3)) for k in range(3)]
    serial = pd.read_parquet(tmp_path / "s" / "connections.parquet")
    dask = pd.read_parquet(tmp_path / "d" / "connections.parquet")
    assert serial["silent_drop"].sum() > 5 and (serial["leg"] == "upstream").sum() > 0
    pd.testing.assert_frame_equal(serial, dask)
    assert _summary(tmp_path / "s") == _summary(tmp_path / "d")


def test_chunk_totals_merged_give_the_summary_of_all_rows():
    sc = load_config(SMALL, SPLITTABLE[1::2] + ["replications=1"]).scenario
    whole = run_one(sc, 11)
    totals, parts = RowTotals(), []
    for slots in slot_pieces(range(sc.connections), 7, most=6):
        part = run_one(sc, 11, slots=slots)
        totals.merge(RowTotals().add(part.columns))
        parts.append(part)
    from sim.model.scenario import merge

    merged = merge(parts)
    expected, got = summarize_one(whole, sc.duration), summary_from(totals, merged.counters, merged.series, sc.duration)
    assert list(got) == list(expected)
    pairs = [(got, expected)] + [(got["by_class"][name], cls) for name, cls in expected.pop("by_class").items()]
    got.pop("by_class")
    for g, e in pairs:  # the fleet's figures, then each traffic class's
        assert list(g) == list(e)
        assert sorted(g.pop("_detects")) == sorted(e.pop("_detects"))  # a median's values: any order
        for k, v in e.items():
            assert (g[k] == v) or (isinstance(v, float) and math.isnan(v) and math.isnan(g[k])), k


def test_exact_sums_do_not_depend_on_the_order_or_the_split():
    rng = random.Random(5)
    values = [rng.choice([1e16, -1e16, 1.0, 0.1, 3e-300, 7.5]) * rng.random() for _ in range(2000)]
    whole = ExactSum()
    for x in values:
        whole.add(x)
    parts = [ExactSum() for _ in range(3)]
    for i, x in enumerate(reversed(values)):
        parts[i % 3].add(x)
    for p in parts[1:]:
        parts[0].merge(p)
    assert whole.value == parts[0].value == math.fsum(values)
    assert sum(values) != math.fsum(values)  # plain summation would depend on the order
    inf = ExactSum()
    for x in (1.0, math.inf, 2.0):
        inf.add(x)
    assert inf.value == math.inf


def _peak_by_events(intervals) -> int:
    """The flow peak as it was computed before it was vectorised: events sorted, ends first."""
    events = sorted(e for s, t in intervals if t > s for e in ((s, 1), (t, -1)))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_the_vectorised_peak_counts_as_the_event_sweep_does():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(0, 60))
        starts = rng.integers(0, 20, n).astype(float)  # whole seconds: many ties
        iv = [(s, s + float(rng.integers(-2, 8))) for s in starts]
        assert peak_overlap(iv) == peak_overlap(np.array(iv).reshape(-1, 2)) == _peak_by_events(iv)


def test_every_chunk_is_written_as_it_finishes_and_an_interrupted_run_keeps_them(tmp_path, monkeypatch, capsys):
    import sim.execution.dask_run as dr

    def two_then_ctrl_c(fn, tasks, executor, workers, scheduler):
        for task in tasks[:2]:
            yield task, fn(task), ""
        raise KeyboardInterrupt

    monkeypatch.setattr(dr, "run_all", two_then_ctrl_c)
    out = tmp_path / "o"
    assert main(["run", SMALL, *SPLITTABLE, "--executor", "dask", "--workers", "2", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted: 2 of 8 chunks finished" in err
    kept = sorted(p.name for p in (out / "parts").iterdir())
    assert kept == ["r000-c00000.conns.parquet", "r000-c00001.conns.parquet"]
    first = pd.read_parquet(out / "parts" / kept[0])
    assert set(first["replication"]) == {0} and first["conn_id"].is_monotonic_increasing
    # run again: the stale parts are not merged twice
    _serially(monkeypatch)
    assert main(["run", SMALL, *SPLITTABLE, "--executor", "dask", "--workers", "2", "--out", str(out),
                 "--quiet"]) == 0
    assert main(["run", SMALL, *SPLITTABLE, "--out", str(tmp_path / "s"), "--quiet"]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s" / "connections.parquet"),
                                  pd.read_parquet(out / "connections.parquet"))


def test_the_client_keeps_no_rows(monkeypatch):
    """What a chunk hands back: no columns; its flows as an array of 16 bytes a flow."""
    import sim.execution.dask_run as dr

    seen = []

    def spy(fn, tasks, executor, workers, scheduler):
        for task in tasks:
            res = fn(task)
            flows = res.rec.series["devices"][0]["intervals"]  # as handed back, before the client merges it
            seen.append((res, isinstance(flows, np.ndarray) and flows.dtype == float and flows.shape[1] == 2))
            yield task, res, ""

    monkeypatch.setattr(dr, "run_all", spy)
    sc = load_config(SMALL, SPLITTABLE[1::2]).scenario
    result = dr.run_on_dask(sc, workers=2, chunk_slots=10)
    assert result.records == [] and len(seen) == 8 and all(r.parquet is None for r, _ in seen)
    for res, flows_as_array in seen:
        assert res.rec.columns == {} and res.rec.trace is None and flows_as_array
    assert result.summary["connections"] == sum(r.totals.connections for r, _ in seen)


@pytest.mark.parametrize(("sets", "says"), [
    (["envoy.concurrency=1"], "share state"),  # an HTTP listener: one Envoy worker's pool for every slot
    (["envoy.listener.protocol=tcp_proxy", "lb.max_flows=10"], "share state"),
    (["envoy.listener.protocol=tcp_proxy", "fleet.sample=10"], "sampled fleet"),
])
def test_a_fleet_that_cannot_be_split_is_refused_with_one_line(sets, says, capsys, monkeypatch):
    import sim.execution.dask_run as dr

    monkeypatch.setattr(dr, "run_all", None)  # never reached
    args = [a for s in sets for a in ("--set", s)]
    assert main(["run", SMALL, *args, "--executor", "dask"]) == 2
    err = _one_line(capsys)
    assert says in err and "--executor" in err


def test_an_unreachable_scheduler_exits_2_with_one_line(capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    import sim.execution.executors as ex

    monkeypatch.setattr(ex, "DASK_CONNECT_TIMEOUT_S", 1)
    assert main(["run", SMALL, *SPLITTABLE, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
                 "--quiet"]) == 2
    assert "cannot reach the Dask scheduler within 1 s" in _one_line(capsys)


def test_a_long_dask_run_reports_progress_by_finished_chunks(monkeypatch, capsys):
    import sim.execution.dask_run as dr
    import sim.execution.progress

    _serially(monkeypatch)
    monkeypatch.setattr(sim.execution.progress, "PLAIN_EVERY_S", 0.0)
    monkeypatch.setattr(dr, "PIECE_SLOTS", 10)  # a "large" fleet: more slots than a piece
    assert main(["run", SMALL, *SPLITTABLE, "--executor", "dask", "--workers", "2", "--json"]) == 0
    err = capsys.readouterr().err
    assert "run: 10/80 slots done" in err and "run: 80/80 slots done in" in err


def test_serial_runs_one_process_whatever_workers_says(monkeypatch, capsys):
    import sim.execution.runner
    import sim.execution.sweep

    monkeypatch.setattr(sim.execution.sweep, "available_cores", lambda: 4)  # as on any machine
    asked = []
    real = sim.execution.runner.run_scenario
    monkeypatch.setattr(sim.execution.runner, "run_scenario", lambda sc, **kw: asked.append(kw["workers"]) or
                        real(sc, **kw))
    for executor in ("serial", "process"):
        assert main(["run", SMALL, *SPLITTABLE, "--executor", executor, "--workers", "2", "--quiet"]) == 0
    assert asked == [1, 2]


def test_a_fleet_with_a_port_budget_per_own_client_instance_is_split_with_the_same_summary(monkeypatch):
    """One client instance per slot: each budget is its slot's own, so the fleet is split, and the
    budgets' figures (held as arrays per chunk) come out as from the whole fleet."""
    from sim.config.validate import Source, validate_scenario
    from sim.execution.runner import run_scenario

    _serially(monkeypatch)
    raw = {"duration": 600, "connections": 12, "replications": 2, "kernel": {"hz": 250, "timers": "exact"},
           "lb": {"profile": "aws-nat-gateway", "idle_timeout": 100, "ports": {"limit": 1, "per": "client_instance"}},
           "traffic": {"ramp": 0, "request_gap": {"exponential": 150}}}
    sc = validate_scenario(raw, Source("<test>", {}))
    import sim.execution.dask_run as dr

    split = dr.run_on_dask(sc, workers=2, chunk_slots=4).summary
    whole = run_scenario(sc).summary
    assert split["devices"][0]["ports_limit"] == 1 and split["devices"][0]["ports_peak"] == 1
    split.pop("run"), whole.pop("run")
    assert json.dumps(split, sort_keys=True, default=str) == json.dumps(whole, sort_keys=True, default=str)

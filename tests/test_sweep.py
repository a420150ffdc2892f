"""Sweeps: grid and seeds, identical results from every executor, resume after SIGKILL, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.config.load import load_config
from sim.execution.grid import expand
from sim.execution.seeds import replication_seed

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))
RUN_COLS = ["run_events", "run_wall_s", "run_version"]


def _points(out: Path) -> pd.DataFrame:
    df = pd.read_parquet(out / "points.parquet")
    return df.drop(columns=RUN_COLS).sort_values(["point_id", "replication"], ignore_index=True)


def test_grid_is_the_product_with_canonical_values():
    points, knobs, conds = expand(load_config(SMALL))
    assert knobs == ["envoy.listener.keepalive.idle"] and conds == ["kernel.hz"]
    assert [(p.params["envoy.listener.keepalive.idle"], p.params["kernel.hz"]) for p in points] == [
        (300, 250), (300, 1000), (345, 250), (345, 1000)]
    assert len({p.point_id for p in points}) == 4


def test_replication_seeds_are_common_across_points_and_distinct_across_replications():
    assert replication_seed(3, 0) == replication_seed(3, 0)
    assert len({replication_seed(3, r) for r in range(10)}) == 10


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_executors_give_identical_points(tmp_path, executor, capsys):
    assert main(["sweep", SMALL, "--executor", "serial", "--out", str(tmp_path / "serial"), "--quiet",
                 "--no-report"]) == 0
    assert main(["sweep", SMALL, "--executor", executor, "--workers", "2", "--out", str(tmp_path / executor),
                 "--quiet", "--no-report"]) == 0
    capsys.readouterr()
    pd.testing.assert_frame_equal(_points(tmp_path / "serial"), _points(tmp_path / executor))


def test_sweep_json_and_verdict(tmp_path, capsys):
    assert main(["sweep", SMALL, "--executor", "serial", "--out", str(tmp_path / "o"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["points"]) == 4
    p0 = data["points"][0]
    assert set(p0["params"]) == {"envoy.listener.keepalive.idle", "kernel.hz"}
    assert isinstance(p0["safe"], bool)
    assert data["recommended"]["params"] == {"envoy.listener.keepalive.idle": 300}
    report = (tmp_path / "o" / "report.md").read_text()
    assert "Recommended" in report and "plots/heatmap.png" in report
    for name in ("heatmap.png", "detection.png", "cost_vs_safety.png"):
        assert (tmp_path / "o" / "plots" / name).stat().st_size > 1000


def test_fail_on_unsafe_exit_3(tmp_path, capsys):
    code = main(["sweep", SMALL, "--executor", "serial", "--out", str(tmp_path / "o"), "--quiet", "--no-report",
                 "--set", "envoy.listener.keepalive.idle=345", "--fail-on-unsafe"])
    assert code == 3


def test_killed_sweep_resumes_to_the_same_points(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    full = tmp_path / "full"
    part = tmp_path / "part"
    base = [sys.executable, "-m", "sim", "sweep", SMALL, "--executor", "serial", "--quiet", "--no-report"]
    subprocess.run([*base, "--out", str(full)], check=True, env=env, capture_output=True)
    proc = subprocess.Popen([*base, "--out", str(part)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once some, but not all, tasks are on disk
        if len(list((part / "parts").glob("*.points.parquet"))) >= 2 if (part / "parts").exists() else False:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (part / "points.parquet").exists()
    done = len(list((part / "parts").glob("*.points.parquet")))
    assert 0 < done < 8
    subprocess.run([*base, "--out", str(part), "--resume"], check=True, env=env, capture_output=True)
    pd.testing.assert_frame_equal(_points(full), _points(part))


def test_report_rebuilds_from_folder(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", SMALL, "--executor", "serial", "--out", str(out), "--quiet"]) == 0
    (out / "report.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "report.md").exists()
    assert main(["report", str(tmp_path)]) == 2


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    import sim.execution.tasks as sweep_tasks  # local executors run and save each task in the worker
    from sim.execution.tasks import run_task as real_task

    def flaky(task):
        if task.params["envoy.listener.keepalive.idle"] == 345 and task.params["kernel.hz"] == 1000:
            raise RuntimeError("boom")
        return real_task(task)

    monkeypatch.setattr(sweep_tasks, "run_task", flaky)
    out = tmp_path / "o"
    code = main(["sweep", SMALL, "--executor", "serial", "--out", str(out), "--quiet", "--no-report"])
    err = capsys.readouterr().err
    assert code == 1
    assert "1 point(s) failed" in err
    assert len(pd.read_parquet(out / "points.parquet")) == 6  # the 3 other points x 2 replications
    monkeypatch.setattr(sweep_tasks, "run_task", real_task)
    assert main(["sweep", SMALL, "--executor", "serial", "--out", str(out), "--quiet", "--no-report",
                 "--resume"]) == 0
    assert len(pd.read_parquet(out / "points.parquet")) == 8


# ----------------------------------------------------------------------------- --resume keeps only matching runs
BASE = [SMALL, "--executor", "serial", "--quiet", "--no-report"]


def _sweep(out: Path, *extra: str) -> int:
    return main(["sweep", *BASE, "--out", str(out), *extra])


def test_resume_after_a_shrunk_grid_drops_the_points_no_longer_in_it(tmp_path, capsys):
    out = tmp_path / "o"
    assert _sweep(out) == 0
    capsys.readouterr()
    shrunk = "sweep={envoy.listener.keepalive.idle: [300s], conditions: {kernel.hz: [250, 1000]}}"
    assert _sweep(out, "--resume", "--set", shrunk) == 0
    assert "resuming: 4 of 4 runs already done" in capsys.readouterr().err
    pts = pd.read_parquet(out / "points.parquet")
    assert set(pts["envoy.listener.keepalive.idle"]) == {300} and len(pts) == 4
    assert len(pd.read_csv(out / "summary.csv")) == 2
    assert set(pd.read_parquet(out / "connections.parquet")["point_id"]) == set(pts["point_id"])


@pytest.mark.parametrize("change", ["seed=4", "duration=20m", "traffic.request_gap={exponential: 5m}"])
def test_resume_reruns_every_run_whose_settings_changed(tmp_path, change, capsys):
    out, fresh = tmp_path / "o", tmp_path / "fresh"
    assert _sweep(out) == 0
    capsys.readouterr()
    assert _sweep(out, "--resume", "--set", change) == 0
    assert "resuming: 0 of 8 runs already done" in capsys.readouterr().err
    assert _sweep(fresh, "--set", change) == 0
    pd.testing.assert_frame_equal(_points(out), _points(fresh))


def test_resume_with_more_replications_keeps_the_finished_ones(tmp_path, capsys):
    out = tmp_path / "o"
    assert _sweep(out) == 0
    capsys.readouterr()
    assert _sweep(out, "--resume", "--set", "replications=3") == 0
    assert "resuming: 8 of 12 runs already done" in capsys.readouterr().err
    assert len(pd.read_parquet(out / "points.parquet")) == 12


def test_resume_refuses_a_folder_of_another_config(tmp_path, capsys):
    out = tmp_path / "o"
    assert _sweep(out) == 0
    capsys.readouterr()
    assert _sweep(out, "--resume", "--set", "name=other") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'sweep-small'" in err and "--resume" in err

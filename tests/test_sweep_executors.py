"""The process pool under stress: a killed parent takes its workers along, a dying worker fails only
its own task, Ctrl-C stops at once and keeps what finished, --workers is capped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))
ENV = {**os.environ, "PYTHONPATH": str(Path.cwd())}
#: a sweep of many short runs, long enough in all to be stopped in the middle
LONG = [sys.executable, "-m", "sim", "sweep", SMALL, "--executor", "process", "--workers", "2", "--quiet",
        "--no-report", "--set", "replications=40", "--set", "connections=30", "--set", "duration=2h"]


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid``."""
    out = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.add(int(d.name))
    return out


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for p in pids:
        try:
            state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(p)
    return alive


def _wait_for_parts(out: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "parts").exists() and len(list((out / "parts").glob("*.points.parquet"))) >= n:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {n} finished parts in {out}")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen([*LONG, "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        _wait_for_parts(out, 1, proc)
        workers = _children(proc.pid)
        assert workers, "the pool's workers are running"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while _alive(workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = _alive(workers)
    finally:
        for p in _alive(workers | _children(proc.pid)):  # never leave orphans behind, whatever failed
            os.kill(p, signal.SIGKILL)
    assert not left, f"orphaned workers still running: {left}"
    done = len(list((out / "parts").glob("*.points.parquet")))
    time.sleep(1.0)  # nothing writes parts any more
    assert len(list((out / "parts").glob("*.points.parquet"))) == done


@pytest.mark.parametrize("how", ["exit", "sigkill"])
def test_a_dying_worker_fails_only_its_own_point(tmp_path, monkeypatch, capsys, how):
    import sim.execution.tasks as sweep_tasks
    from sim.execution.tasks import run_task as real_task

    def dies(task):  # runs in the forked workers
        if task.params["envoy.listener.keepalive.idle"] == 345 and task.params["kernel.hz"] == 1000:
            if how == "exit":
                os._exit(7)
            os.kill(os.getpid(), signal.SIGKILL)
        return real_task(task)

    monkeypatch.setattr(sweep_tasks, "run_task", dies)
    out = tmp_path / "o"
    code = main(["sweep", SMALL, "--executor", "process", "--workers", "2", "--out", str(out), "--quiet",
                 "--no-report"])
    err = capsys.readouterr().err
    assert code == 1 and "1 point(s) failed" in err
    assert len(pd.read_parquet(out / "points.parquet")) == 6  # the 3 other points x 2 replications
    errors = pd.concat([pd.read_parquet(f) for f in (out / "parts").glob("*.error.parquet")])
    reason = "exited with code 7" if how == "exit" else "killed by SIGKILL"
    assert len(errors) == 2 and errors["error"].str.contains(reason).all()


def test_ctrl_c_stops_at_once_keeps_what_finished_and_says_how_to_resume(tmp_path):
    out = tmp_path / "o"
    proc = subprocess.Popen([*LONG, "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_parts(out, 2, proc)
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole process group
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    pts = pd.read_parquet(out / "points.parquet")
    parts = list((out / "parts").glob("*.points.parquet"))
    assert 2 <= len(pts) == len(parts) < 160  # what finished, and only that
    resumed = subprocess.run([*LONG, "--out", str(out), "--resume", "--workers", "1"], env=ENV,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming: {len(pts)} of 160 runs already done" in resumed.stderr
    assert len(pd.read_parquet(out / "points.parquet")) == 160


def test_workers_are_capped_at_the_cores_and_the_runs(tmp_path, monkeypatch, capsys):
    import sim.execution.sweep as sweep_run

    seen = []
    real = sweep_run.run_all

    def spy(fn, tasks, executor, workers, scheduler):
        seen.append(workers)
        return real(fn, tasks, "serial", workers, scheduler)

    monkeypatch.setattr(sweep_run, "available_cores", lambda: 2)
    monkeypatch.setattr(sweep_run, "run_all", spy)
    assert main(["sweep", SMALL, "--workers", "500", "--out", str(tmp_path / "o"), "--quiet", "--no-report"]) == 0
    assert "sweep: --workers 500 capped at 2 (8 task(s), 2 core(s))" in capsys.readouterr().err
    assert seen == [2]
    assert main(["sweep", SMALL, "--workers", "500", "--out", str(tmp_path / "o"), "--quiet", "--no-report",
                 "--set", "sweep={kernel.hz: [250]}", "--set", "replications=1"]) == 0
    assert "capped at 1 (1 task(s)" in capsys.readouterr().err
    assert seen == [2, 1]


def test_run_workers_are_capped_at_the_cores(monkeypatch, capsys):
    import sim.execution.sweep as sweep_run

    monkeypatch.setattr(sweep_run, "available_cores", lambda: 1)
    assert main(["run", SMALL, "--workers", "500", "--set", "connections=4", "--set", "duration=10m",
                 "--json"]) == 0
    assert "run: --workers 500 capped at 1" in capsys.readouterr().err


def test_run_in_pieces_over_workers_gives_the_same_records(monkeypatch):
    import sim.execution.runner
    from sim.config.load import load_config

    sc = load_config(SMALL, ["connections=12", "duration=20m"]).scenario
    whole = sim.execution.runner.run_scenario(sc)
    monkeypatch.setattr(sim.execution.runner, "PIECE_SLOTS", 5)
    for workers in (1, 2):
        split = sim.execution.runner.run_scenario(sc, workers=workers)
        assert {k: v for k, v in split.summary.items() if k != "run"} == \
            {k: v for k, v in whole.summary.items() if k != "run"}
        pd.testing.assert_frame_equal(split.connections_frame(), whole.connections_frame())

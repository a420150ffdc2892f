"""Command-line conventions: --version, help with examples, a closed pipe, a config on stdin,
progress lines when stderr is not a terminal, file modes from the umask, --keep summary."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sim import __version__
from sim.cli import _parser, main

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))
ENV = {**os.environ, "PYTHONPATH": str(Path.cwd())}
QUIET = ["--executor", "serial", "--quiet", "--no-report"]


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"keepalive-sim {__version__}\n"


def test_every_command_has_help_with_an_example(capsys):
    sub = next(a for a in _parser()._actions if a.dest == "cmd")
    assert set(sub.choices) >= {"run", "sweep", "report", "profiles", "inspect", "recommend", "validate"}
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        text = capsys.readouterr().out
        assert "example" in text and f"python -m sim {name}" in text, name


def test_a_closed_pipe_ends_quietly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sim", "sweep", SMALL, *QUIET, "--json",
                             "--out", str(tmp_path / "o")], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head` that has already gone
    err = proc.stderr.read().decode()
    proc.wait()
    assert proc.returncode in (0, 141)
    assert "Traceback" not in err and "BrokenPipe" not in err and "internal error" not in err, err


def test_run_reads_the_config_from_stdin(tmp_path):
    text = Path(SMALL).read_text()
    done = subprocess.run([sys.executable, "-m", "sim", "run", "-", "--set", "connections=3", "--set",
                           "duration=10m", "--json"], input=text, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '"connections": 6' in done.stdout  # 3 slots x 2 replications
    bad = subprocess.run([sys.executable, "-m", "sim", "run", "-"], input="name: x\nconnections: 0\n", env=ENV,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: <stdin>:2: connections:") and bad.stderr.count("\n") == 1


def test_progress_lines_when_stderr_is_not_a_terminal(tmp_path, capsys, monkeypatch):
    import sim.execution.progress

    monkeypatch.setattr(sim.execution.progress, "PLAIN_EVERY_S", 0.0)
    assert main(["sweep", SMALL, "--executor", "serial", "--no-report", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert "sweep: 1/8 runs done, eta " in err[0]
    assert err[-1].startswith("sweep: 8/8 runs done in ")
    assert main(["sweep", SMALL, "--executor", "serial", "--no-report", "--quiet", "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().err == ""


def test_run_of_a_large_fleet_reports_progress(capsys, monkeypatch):
    import sim.execution.progress
    import sim.execution.runner

    monkeypatch.setattr(sim.execution.progress, "PLAIN_EVERY_S", 0.0)
    monkeypatch.setattr(sim.execution.runner, "PIECE_SLOTS", 5)
    # tcp_proxy: no upstream pools, so the slots are independent and the fleet is split in pieces
    assert main(["run", SMALL, "--set", "connections=10", "--set", "duration=10m", "--set",
                 "envoy.listener.protocol=tcp_proxy", "--json"]) == 0
    err = capsys.readouterr().err
    assert "run: 5/20 slots done" in err and "run: 20/20 slots done in" in err


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_results_files_follow_the_umask(tmp_path, umask, capsys):
    old = os.umask(umask)
    try:
        assert main(["sweep", SMALL, *QUIET, "--out", str(tmp_path / "o"), "--set", "duration=10m"]) == 0
        assert main(["run", SMALL, "--out", str(tmp_path / "r"), "--set", "duration=10m"]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "o").rglob("*") if p.is_file()] + list((tmp_path / "r").glob("*"))
    assert len(files) > 10
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask, p


def test_keep_summary_drops_the_bulky_files(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", SMALL, "--executor", "serial", "--quiet", "--out", str(out), "--keep", "summary"]) == 0
    kept = {p.name for p in out.iterdir()}
    assert {"points.parquet", "summary.csv", "sweep.json", "report.md", "plots", "config.resolved.yaml"} <= kept
    assert not kept & {"connections.parquet", "series.parquet", "parts"}
    assert main(["report", str(out)]) == 0
    capsys.readouterr()
    assert main(["sweep", SMALL, *QUIET, "--out", str(out), "--resume"]) == 0
    assert "resuming: 0 of 8 runs already done" in capsys.readouterr().err
    assert len(pd.read_parquet(out / "points.parquet")) == 8


def test_reference_flag_gives_the_same_answers_with_more_events(tmp_path, capsys):
    """`run --reference` and `sweep --reference`: every shortcut off (docs/model.md), the same summary
    and the same stored records, from more dispatched events."""
    import json

    argv = ["run", "configs/nlb.yaml", "--set", "connections=4", "--set", "duration=2h", "--json"]
    assert main(argv) == 0
    fast = json.loads(capsys.readouterr().out)
    assert main([*argv, "--reference"]) == 0
    ref = json.loads(capsys.readouterr().out)
    fast_run, ref_run = fast.pop("run"), ref.pop("run")
    assert ref == fast
    assert ref_run["events"] > fast_run["events"]
    frames = {}
    for name, extra in (("fast", []), ("ref", ["--reference"])):
        out = tmp_path / name
        assert main(["sweep", SMALL, *QUIET, "--keep", "all", "--out", str(out), *extra]) == 0
        frames[name] = (pd.read_parquet(out / "points.parquet"), pd.read_parquet(out / "connections.parquet"))
    capsys.readouterr()
    pd.testing.assert_frame_equal(frames["ref"][1], frames["fast"][1])
    points = [f.drop(columns=[c for c in f.columns if c.startswith("run") or c in ("events", "wall_s")])
              for f, _ in (frames["ref"], frames["fast"])]
    pd.testing.assert_frame_equal(points[0], points[1])
    assert (frames["ref"][0]["run_events"] > frames["fast"][0]["run_events"]).all()

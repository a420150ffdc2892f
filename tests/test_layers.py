"""The layers point one way (issue 14, point 1): reading a results folder runs no report code,
and building a report neither simulates nor imports execution. (import-linter checks the imports
statically in CI: [tool.importlinter] in pyproject.toml.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sim.cli import main

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished sweep folder (report not built)."""
    out = tmp_path_factory.mktemp("layers") / "o"
    assert main(["sweep", SMALL, "--executor", "serial", "--out", str(out), "--quiet", "--no-report"]) == 0
    return out


def _imported_by(code: str) -> set[str]:
    """The ``sim.*`` modules a fresh interpreter has imported after running ``code``."""
    probe = code + "\nimport sys\nprint(' '.join(m for m in sys.modules if m == 'sim' or m.startswith('sim.')))"
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    return set(proc.stdout.split())


def test_loading_a_results_folder_runs_no_report_code(finished):
    mods = _imported_by(f"from sim.results.load import load_results\nres = load_results({str(finished)!r})\n"
                        "assert len(res.points) == 4 and res.knobs == ['envoy.listener.keepalive.idle']")
    assert "sim.results.load" in mods
    assert not {m for m in mods if m.startswith(("sim.report", "sim.execution"))}


def test_a_sweep_run_by_execution_imports_no_report_code(tmp_path):
    out = tmp_path / "o"
    mods = _imported_by("from sim.config.load import load_config\nfrom sim.execution.sweep import run_sweep\n"
                        f"stored = run_sweep(load_config({SMALL!r}, ['replications=1', 'connections=4']), "
                        f"__import__('pathlib').Path({str(out)!r}), executor='serial', quiet=True)\n"
                        "assert len(stored.raw) == 4 and not stored.failed")
    assert "sim.execution.tasks" in mods
    assert not {m for m in mods if m.startswith(("sim.report", "sim.integrations", "sim.cli"))}
    assert (out / "points.parquet").exists() and not (out / "sweep.json").exists()  # the verdicts are the report's


def _copy(folder: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(folder, tmp_path / "copy"))


def test_each_task_with_a_drop_stores_the_trace_of_its_earliest_dropped_connection(finished):
    """The trace comes from re-running that connection's slot only: the packets are those of the
    whole fleet's run with that connection traced."""
    import pandas as pd

    from sim.config.load import load_config
    from sim.execution import run_one
    from sim.execution.grid import expand

    conns = pd.read_parquet(finished / "connections.parquet")
    traces = pd.read_parquet(finished / "trace.parquet")
    dropped = conns[conns["silent_drop"]]
    assert not dropped.empty
    first = dropped.sort_values("drop_at_s", kind="stable").groupby(["point_id", "replication"]).head(1)
    traced = traces.drop_duplicates(["point_id", "replication"])
    assert sorted(zip(first["point_id"], first["replication"], first["conn_id"], strict=True)) == \
        sorted(zip(traced["point_id"], traced["replication"], traced["conn_id"], strict=True))
    row = traced.iloc[0]
    point = next(p for p in expand(load_config(SMALL))[0] if p.point_id == row["point_id"])
    seeds = pd.read_parquet(finished / "points.parquet")
    seed = int(seeds[(seeds["point_id"] == row["point_id"]) & (seeds["replication"] == row["replication"])]["seed"]
               .iloc[0])
    whole = run_one(point.scenario, seed, trace_conn=int(row["conn_id"]))
    mine = traces[(traces["point_id"] == row["point_id"]) & (traces["replication"] == row["replication"])]
    from sim.facts.names import TRACE_FIELDS
    from sim.metrics.packets import stored_entries

    assert whole.trace and len(whole.trace[0]) == len(TRACE_FIELDS)
    assert stored_entries(mine) == whole.trace


def test_building_a_report_never_runs_the_model(finished, tmp_path, monkeypatch):
    import sim.execution
    import sim.execution.simulate
    import sim.model.scenario
    from sim.report.markdown import build_report

    def boom(*args, **kwargs):
        raise AssertionError("the report simulated")

    for module, name in ((sim.execution, "run_one"), (sim.execution.simulate, "run_one"),
                         (sim.execution.simulate, "run_world"), (sim.model.scenario, "run_world")):
        monkeypatch.setattr(module, name, boom)
    root = _copy(finished, tmp_path)
    text = build_report(root).read_text()
    assert "## Why: one dropped connection" in text and (root / "plots" / "timeline.png").exists()


def test_the_reports_figure_is_drawn_from_the_trace_commands_lines(finished, tmp_path, monkeypatch):
    """The figure's points are sim.metrics.packets.lines() of the stored entries, the function that
    makes `python -m sim trace`'s timeline: every point is one of them, packets are seen where they
    were received too, and the LB's verdicts are on its lane."""
    import pandas as pd

    from sim.metrics.packets import lane_events, lines, stored_entries
    from sim.report import plots
    from sim.report.markdown import build_report

    shown: list = []
    real = plots.timeline

    def spy(trace, *args, **kwargs):
        shown.extend(trace)
        return real(trace, *args, **kwargs)

    monkeypatch.setattr(plots, "timeline", spy)
    root = _copy(finished, tmp_path)
    build_report(root)
    traces = pd.read_parquet(root / "trace.parquet")
    every = {e for _, sub in traces.groupby(["point_id", "replication", "conn_id"])
             for e in lane_events(lines(stored_entries(sub)))}
    assert shown and set(shown) <= every
    assert {"sent", "received"} <= {note for _, _, _, note in shown}
    assert any(lane == "lb" and what in ("expired", "RST", "drop") for _, lane, what, _ in shown)


def test_the_timeline_survives_keep_summary(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", SMALL, "--executor", "serial", "--out", str(out), "--quiet", "--keep", "summary",
                 "--set", "replications=1"]) == 0
    assert not (out / "connections.parquet").exists() and (out / "trace.parquet").exists()
    (out / "plots" / "timeline.png").unlink()
    assert main(["report", str(out)]) == 0
    assert "## Why: one dropped connection" in (out / "report.md").read_text()
    assert (out / "plots" / "timeline.png").exists()


def _report_imports(finished: Path, tmp_path: Path) -> set[str]:
    root = _copy(finished, tmp_path)
    return _imported_by(f"from sim.report.markdown import build_report\nbuild_report(__import__('pathlib')"
                        f".Path({str(root)!r}))")


def test_building_a_report_imports_no_execution_code(finished, tmp_path):
    mods = _report_imports(finished, tmp_path)
    assert "sim.report.markdown" in mods and "sim.results.load" in mods
    assert not {m for m in mods if m.startswith(("sim.execution", "sim.integrations", "sim.cli"))}


def test_building_a_report_imports_no_model_code(finished, tmp_path):
    assert not {m for m in _report_imports(finished, tmp_path) if m.startswith("sim.model")}

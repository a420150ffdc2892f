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

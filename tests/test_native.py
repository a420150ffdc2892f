"""The compiled core (mypyc, built at install) computes exactly what the plain-Python core does,
and a stale or unwanted compiled core is never used."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sim import native
from tests.test_model_equivalence import same_columns

_RUN = """
import json, sys
from sim.config.load import load_config
from sim import native
from sim.execution import run_one
sc = load_config(sys.argv[1], sys.argv[2:] + ["replications=1"]).scenario
rec = run_one(sc, 5, trace_conn=0)
print(json.dumps({"compiled": native.COMPILED, "columns": rec.columns, "counters": rec.counters,
                  "trace": rec.trace, "intervals": sorted(rec.flow_intervals), "series": rec.series}))
"""

CASES = [
    ("configs/nlb.yaml", ["connections=40", "duration=3h"]),
    ("configs/nlb-tls.yaml", ["connections=20", "duration=2h"]),
    ("configs/azure-lb-blackhole.yaml", ["connections=30", "duration=2h", "kernel.timers=exact"]),
    ("configs/keepalive-inversion.yaml", ["connections=20", "duration=1h"]),
]


def _run(path: str, overrides: list[str], pure: bool) -> dict:
    env = dict(os.environ)
    env.pop("SIM_PURE", None)
    if pure:
        env["SIM_PURE"] = "1"
    out = subprocess.run([sys.executable, "-c", _RUN, path, *overrides], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


@pytest.mark.skipif(not native.COMPILED, reason=f"the compiled core is not in use: {native.REASON}")
@pytest.mark.parametrize(("path", "overrides"), CASES)
def test_compiled_and_plain_cores_give_identical_records(path, overrides):
    compiled, plain = _run(path, overrides, False), _run(path, overrides, True)
    assert compiled.pop("compiled") is True
    assert plain.pop("compiled") is False
    assert same_columns(compiled.pop("columns"), plain.pop("columns"))
    assert compiled == plain


def test_sim_pure_loads_the_plain_sources():
    env = dict(os.environ, SIM_PURE="1")
    code = "import sim.model.kernel as k, sim.native as n; print(n.COMPILED, k.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True).stdout
    compiled, path = out.split()
    assert compiled == "False" and path.endswith("kernel.py")


def test_a_stale_or_missing_build_is_not_used():
    digest = "ab" * 32
    assert native.choose(True, "", digest + "\n", digest) == (True, "")
    assert native.choose(True, "", "cd" * 32, digest)[0] is False  # sources edited after the build
    assert native.choose(True, "", None, digest)[0] is False  # no manifest
    assert native.choose(True, "1", digest, digest) == (False, "SIM_PURE is set")
    assert native.choose(False, "", digest, digest)[0] is False


def test_the_digest_covers_every_compiled_source(tmp_path, monkeypatch):
    for name in native.MODULES:
        (tmp_path / f"{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{name}.py").write_text(f"# {name}\n")
    monkeypatch.setattr(native, "_HERE", tmp_path)
    before = native.sources_digest()
    (tmp_path / "model" / "records.py").write_text("# edited\n")
    assert native.sources_digest() != before

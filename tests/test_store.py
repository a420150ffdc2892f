"""The results folder's tables: one type per column whatever the swept values, exact seeds, nested
summary fields as JSON text, and reading them back (sim/report/results.py) gives the same values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.report.results import load_points, load_results
from sim.sweep.seeds import replication_seed

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))
QUIET = ["--executor", "serial", "--quiet", "--no-report"]

MIXED = """\
name: mixed-axis
duration: 20m
replications: 2
seed: 3
connections: 4
traffic:
  request_gap: {exponential: 8m}
lb: {profile: aws-nlb-tcp, idle_timeout: 350s}
envoy:
  listener:
    keepalive: off
sweep:
  envoy.listener.keepalive:
    - off
    - {idle: 300s, interval: 20s, count: 4}
  conditions:
    kernel.hz: [250, 1000]
"""
KA_TEXT = '{"count":4,"idle":300,"interval":20}'


def _mixed(tmp_path: Path) -> str:
    cfg = tmp_path / "mixed.yaml"
    cfg.write_text(MIXED)
    return str(cfg)


def test_an_axis_mixing_off_and_a_keepalive_mapping_is_stored_and_read_back(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", _mixed(tmp_path), "--executor", "serial", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    key = "envoy.listener.keepalive"
    stored = pd.read_parquet(out / "points.parquet")
    assert stored[key].map(type).eq(str).all()  # one Arrow type: canonical JSON text
    assert set(stored[key]) == {"false", KA_TEXT}
    assert json.loads((out / "sweep.json").read_text())["json_columns"] == {"points.parquet": [key],
                                                                           "summary.csv": [key]}
    res = load_results(out)
    assert list(res.points[key]) == [False, False, KA_TEXT, KA_TEXT]
    assert list(res.points["kernel.hz"]) == [250, 1000, 250, 1000]
    assert set(load_points(out)[key]) == {False, KA_TEXT}
    assert (out / "report.md").exists()


def test_sweep_json_gives_mappings_as_objects(tmp_path, capsys):
    assert main(["sweep", _mixed(tmp_path), "--executor", "serial", "--out", str(tmp_path / "o"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    values = [p["params"]["envoy.listener.keepalive"] for p in data["points"]]
    assert values == [False, False, {"idle": 300, "interval": 20, "count": 4}, {"idle": 300, "interval": 20,
                                                                               "count": 4}]
    meta = json.loads((tmp_path / "o" / "sweep.json").read_text())
    assert meta["recommended"]["params"] == {"envoy.listener.keepalive": {"count": 4, "idle": 300, "interval": 20}}


@pytest.mark.parametrize("seed", [2, 4, 99, 2**64 + 5, 2**128 - 1])
def test_replication_seeds_on_both_sides_of_2_63_are_stored_exactly(tmp_path, seed, capsys):
    out = tmp_path / "o"
    assert main(["sweep", SMALL, *QUIET, "--out", str(out), "--set", f"seed={seed}",
                 "--set", "duration=10m", "--set", "connections=3"]) == 0
    capsys.readouterr()
    df = pd.read_parquet(out / "points.parquet")
    assert str(df["seed"].dtype) == "uint64"
    got = {(int(r), int(s)) for r, s in zip(df["replication"], df["seed"], strict=True)}
    assert got == {(r, replication_seed(seed, r)) for r in (0, 1)}
    assert main(["sweep", SMALL, *QUIET, "--out", str(out), "--set", f"seed={seed}", "--set", "duration=10m",
                 "--set", "connections=3", "--resume"]) == 0


def test_seed_above_2_128_is_refused(tmp_path, capsys):
    assert main(["sweep", SMALL, *QUIET, "--out", str(tmp_path / "o"), "--set", f"seed={2**128}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seed" in err


def test_a_swept_seed_keeps_the_replication_seed_in_the_seed_column(tmp_path, capsys):
    out = tmp_path / "o"
    big = 2**100 + 7
    assert main(["sweep", SMALL, *QUIET, "--out", str(out), "--set", "duration=10m", "--set", "connections=3",
                 "--set", f"sweep={{seed: [5, {big}]}}"]) == 0
    capsys.readouterr()
    df = pd.read_parquet(out / "points.parquet")
    assert set(df["config_seed"]) == {"5", str(big)}  # int64 cannot hold 2**100: decimal text
    for cs, r, s in zip(df["config_seed"], df["replication"], df["seed"], strict=True):
        assert int(s) == replication_seed(int(cs), int(r))
    res = load_results(out)
    assert list(res.points["seed"]) == [5, big]
    pts = load_points(out)
    assert set(pts["config_seed"]) == {5, big}


def test_nested_summary_fields_are_stored_as_json_and_read_back(tmp_path, monkeypatch, capsys):
    import sim.sweep.tasks as tasks

    real = tasks.summarize_one

    def with_nested(rec, duration_s):
        s = real(rec, duration_s)
        s["devices"] = [{"name": "aws-nlb-tcp", "leg": "downstream", "flows_peak": 3, "nlcu_mean": float("nan")}]
        s["failure_reasons"] = {"reset": 1, "timeout": 0} if s["silent_drops"] else {}
        return s

    monkeypatch.setattr(tasks, "summarize_one", with_nested)
    out = tmp_path / "o"
    assert main(["sweep", SMALL, *QUIET, "--out", str(out)]) == 0
    capsys.readouterr()
    stored = pd.read_parquet(out / "points.parquet")
    assert stored["devices"].map(type).eq(str).all() and stored["failure_reasons"].map(type).eq(str).all()
    pts = load_points(out)
    assert pts["devices"][0] == [{"name": "aws-nlb-tcp", "leg": "downstream", "flows_peak": 3, "nlcu_mean": None}]
    assert {json.dumps(v, sort_keys=True) for v in pts["failure_reasons"]} <= {"{}", '{"reset": 1, "timeout": 0}'}
    assert set(json.loads((out / "sweep.json").read_text())["json_columns"]["points.parquet"]) == {
        "devices", "failure_reasons"}

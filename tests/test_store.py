"""The results folder's tables: one type per column whatever the swept values, exact seeds, nested
summary fields as JSON text, and reading them back (sim/results/load.py) gives the same values."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from sim.cli import main
from sim.execution.seeds import replication_seed
from sim.results.load import load_points, load_results

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
    # (the nested summary fields by_class, connect_outcomes, devices, failure_reasons and fault_counts
    # are JSON text too; summary.csv has no connect_outcomes)
    assert json.loads((out / "sweep.json").read_text())["json_columns"] == {
        "points.parquet": ["by_class", "connect_outcomes", "devices", key, "failure_reasons", "fault_counts"],
        "summary.csv": ["by_class", "devices", key, "failure_reasons"]}
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


def test_nested_summary_fields_are_stored_as_json_and_read_back(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", SMALL, *QUIET, "--out", str(out)]) == 0
    capsys.readouterr()
    stored = pd.read_parquet(out / "points.parquet")
    assert stored["devices"].map(type).eq(str).all() and stored["failure_reasons"].map(type).eq(str).all()
    pts = load_points(out)
    devices = pts["devices"][0]
    assert [(d["name"], d["leg"]) for d in devices] == [("aws-nlb-tcp", "downstream")]
    assert devices[0]["flows_peak"] > 0
    reasons = pts["failure_reasons"]
    assert all(sum(r.values()) == f for r, f in zip(reasons, pts["failed_requests"], strict=True))
    assert list(pts["fault_counts"][0]) == []  # no faults in this config
    assert set(json.loads((out / "sweep.json").read_text())["json_columns"]["points.parquet"]) == {
        "devices", "failure_reasons", "fault_counts", "connect_outcomes", "by_class"}
    assert list(pts["by_class"][0]) == ["default"]  # one traffic mapping: one class
    assert pts["by_class"][0]["default"]["silent_drops"] == pts["silent_drops"][0]
    opened = zip(pts["connect_outcomes"], pts["connections_opened"], strict=True)
    assert all(set(o) == {"ok"} and o["ok"] >= n for o, n in opened)  # every leg's connections


# Every shipped config is swept (and its recommendation emitted) in tests/test_shipped_configs.py.


def test_a_failed_merge_keeps_the_parts_and_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    import sim.results.store as store

    real = store.stream_merge

    def broken(files, path):
        raise ValueError("simulated merge failure")

    monkeypatch.setattr(store, "stream_merge", broken)
    out = tmp_path / "o"
    assert main(["sweep", SMALL, *QUIET, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "simulated merge failure" in err and "rerun with --resume" in err
    assert len(list((out / "parts").glob("*.points.parquet"))) == 8
    monkeypatch.setattr(store, "stream_merge", real)
    assert main(["sweep", SMALL, *QUIET, "--out", str(out), "--resume"]) == 0
    assert "resuming: 8 of 8 runs already done" in capsys.readouterr().err
    assert len(pd.read_parquet(out / "points.parquet")) == 8


def test_parts_of_clashing_types_still_merge_as_json_text(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sim.results.store import conform, stream_merge, unify

    a = pa.table({"x": [False], "n": pa.array([1], pa.int64())})
    b = pa.table({"x": ['{"idle":300}'], "n": pa.array([2.5])})
    schema, as_text = unify([a.schema, b.schema])
    assert as_text == {"x"} and schema.field("n").type == pa.float64()
    merged = pa.concat_tables([conform(a, schema, as_text), conform(b, schema, as_text)])
    assert merged.column("x").to_pylist() == ["false", '"{\\"idle\\":300}"']
    for i, t in enumerate((a, b)):
        pq.write_table(t, tmp_path / f"{i}.parquet")
    stream_merge([tmp_path / "0.parquet", tmp_path / "1.parquet"], tmp_path / "all.parquet")
    assert pq.read_table(tmp_path / "all.parquet").column("n").to_pylist() == [1.0, 2.5]


def test_overwrite_never_deletes_files_that_are_not_ours(tmp_path, capsys):
    mine = tmp_path / "mine"
    (mine / "parts").mkdir(parents=True)
    (mine / "parts" / "data.parquet").write_text("not a part\n")
    assert main(["sweep", SMALL, *QUIET, "--out", str(mine), "--overwrite", "--keep", "summary"]) == 0
    assert (mine / "parts" / "data.parquet").read_text() == "not a part\n"

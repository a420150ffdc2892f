"""The Limits side of a sweep and a run (issue 16 points 4 and 5): verdicts that fail on rejected
connects and say why, the limited devices' occupancy stored by the sweep (limits.parquet), the
report's Limits section with its plot and the exhaustion point, and the NLCU dimensions in `run`.
configs/conntrack-full.yaml scaled down: 12 connections open at once, nothing leaves the table."""

from __future__ import annotations

import json

import pandas as pd

from sim.cli import main

CONFIG = "configs/conntrack-full.yaml"
SMALL = ["--set", "connections=12", "--set", "duration=200s"]


def _sweep(out, *sets: str) -> int:
    args = ["sweep", CONFIG, *SMALL, "--executor", "serial", "--out", str(out), "--quiet"]
    for s in sets:
        args += ["--set", s]
    return main(args)


def test_rejected_connects_are_unsafe_without_a_silent_drop_and_the_why_column_says_so(tmp_path, capsys):
    out = tmp_path / "o"
    assert _sweep(out, "sweep={lb.max_flows: [10, 14]}") == 0
    csv = pd.read_csv(out / "summary.csv")
    full = csv[csv["lb.max_flows"] == 10].iloc[0]
    roomy = csv[csv["lb.max_flows"] == 14].iloc[0]
    assert full["silent_drops"] == 0 and full["connect_failures"] == 2  # 2 SYNs x 1 try within 200 s
    assert not full["safe"] and full["why"] == "rejected connects"
    assert roomy["safe"] and pd.isna(roomy["why"])  # "" in the CSV
    printed = capsys.readouterr().out
    row = next(line for line in printed.splitlines() if line.lstrip().startswith("10 "))
    assert " NO " in row and "rejected connects" in row
    assert "SAFE" not in printed.replace("UNSAFE", "")
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["recommended"]["params"] == {"lb.max_flows": 14}


def test_fail_on_unsafe_counts_rejected_connects(tmp_path, capsys):
    code = main(["sweep", CONFIG, *SMALL, "--set", "lb.max_flows=10", "--set", "sweep={lb.max_flows: [10]}",
                 "--executor", "serial", "--out", str(tmp_path / "o"), "--quiet", "--no-report", "--fail-on-unsafe"])
    assert code == 3
    assert "rejected connects" in capsys.readouterr().err


def test_the_sweep_stores_the_occupancy_of_limited_devices_bounded_by_buckets(tmp_path):
    out = tmp_path / "o"
    assert _sweep(out, "sweep={lb.max_flows: [10, 14]}") == 0
    lim = pd.read_parquet(out / "limits.parquet")
    assert len(lim) == 2 * 4  # two points x one replication x four one-minute buckets, whatever the fleet
    assert set(lim["name"]) == {"linux-conntrack"} and set(lim["kind"]) == {"flows"}
    assert lim.groupby("limit")["occupancy_peak"].max().to_dict() == {10: 10, 14: 12}


def test_report_has_a_limits_section_with_a_plot_per_limited_device(tmp_path):
    out = tmp_path / "o"
    assert _sweep(out, "sweep={lb.max_flows: [10, 14]}") == 0
    report = (out / "report.md").read_text()
    assert "## Limits" in report
    section = report.split("## Limits", 1)[1].split("\n## ", 1)[0]
    for field in ("flows_peak", "flows_limit", "headroom_pct", "connects_rejected", "seconds_full", "exhausted_at_s"):
        assert field in section
    assert "lb.max_flows = 10" in section and "replication 0" in section  # the run plotted, named
    assert "flow table of linux-conntrack fills at lb.max_flows = 10" in section
    assert "14 stays below, headroom 14 %" in section
    plots = list((out / "plots").glob("limits-*.png"))
    assert len(plots) == 1 and f"plots/{plots[0].name}" in report


def test_report_names_the_exhaustion_point_of_a_fleet_size_sweep(tmp_path):
    out = tmp_path / "o"
    grid = "sweep={client.keepalive.idle: [300s], conditions: {connections: [8, 12]}}"
    assert _sweep(out, "lb.max_flows=10", grid) == 0
    report = (out / "report.md").read_text()
    assert ("flow table of linux-conntrack fills from connections = 12 at client.keepalive.idle = 300; "
            "8 stays below, headroom 20 %") in report


def test_a_sweep_without_limits_has_no_limits_section(tmp_path):
    out = tmp_path / "o"
    assert main(["sweep", "tests/sweep_small.yaml", "--executor", "serial", "--out", str(out), "--quiet",
                 "--set", "replications=1", "--set", "sweep={envoy.listener.keepalive.idle: [300s]}"]) == 0
    assert "## Limits" not in (out / "report.md").read_text()
    assert not (out / "limits.parquet").exists()


def test_run_shows_headroom_and_the_nlcu_dimensions(capsys):
    assert main(["run", CONFIG, *SMALL, "--set", "lb.max_flows=10"]) == 0
    printed = capsys.readouterr().out
    assert "headroom 0 %" in printed
    assert "verdict: UNSAFE" in printed and "rejected connects" in printed
    assert main(["run", "configs/nlb.yaml", "--set", "connections=20", "--set", "duration=10m",
                 "--set", "replications=1"]) == 0
    printed = capsys.readouterr().out
    assert "NLCU (estimate): new flows" in printed and "active flows" in printed and "sets the bill" in printed
    assert main(["run", "configs/nlb.yaml", "--set", "connections=20", "--set", "duration=10m",
                 "--set", "replications=1", "--json"]) == 0
    dev = json.loads(capsys.readouterr().out)["devices"][0]
    assert dev["nlcu_dimension"] in ("new_flows", "active_flows", "bytes") and dev["headroom_pct"] is None


def test_report_shows_the_nlcu_dimensions_and_which_sets_the_bill(tmp_path):
    out = tmp_path / "o"
    assert main(["sweep", "tests/sweep_small.yaml", "--executor", "serial", "--out", str(out), "--quiet",
                 "--set", "replications=1", "--set", "sweep={envoy.listener.keepalive.idle: [300s, 345s]}"]) == 0
    report = (out / "report.md").read_text()
    capacity = report.split("## Capacity", 1)[1].split("\n## ", 1)[0]
    assert "| nlcu_new_flows | nlcu_active_flows | nlcu_bytes | nlcu_mean | nlcu_dimension |" in capacity
    csv = pd.read_csv(out / "summary.csv")
    dims = {d["nlcu_dimension"] for v in csv["devices"] for d in json.loads(v)}
    assert len(dims) >= 1 and dims <= {"new_flows", "active_flows", "bytes"}
    assert any(f"| {d} |" in capacity for d in dims)


def test_the_timeline_is_of_a_point_with_a_silent_drop_not_of_one_unsafe_for_rejected_connects(tmp_path):
    """The first unsafe point (5-day idle timeout) only rejected connects: it has no dropped connection
    to draw; the next (60 s idle timeout, requests every 10 min) drops silently."""
    out = tmp_path / "o"
    assert _sweep(out, "lb.max_flows=10", "sweep={lb.idle_timeout: [5d, 60s]}") == 0
    csv = pd.read_csv(out / "summary.csv")
    assert list(csv["why"]) == ["rejected connects", "silent drops and rejected connects"]
    report = (out / "report.md").read_text()
    assert "## Why: one dropped connection" in report and "At lb.idle_timeout=60" in report


def test_keep_summary_keeps_the_occupancy_so_the_report_can_be_rebuilt(tmp_path, capsys):
    out = tmp_path / "o"
    assert _sweep(out, "sweep={lb.max_flows: [10, 14]}") == 0
    assert main(["sweep", CONFIG, *SMALL, "--set", "sweep={lb.max_flows: [10, 14]}", "--executor", "serial",
                 "--out", str(out), "--quiet", "--resume", "--keep", "summary"]) == 0
    assert (out / "limits.parquet").exists() and not (out / "series.parquet").exists()
    for p in (out / "plots").glob("limits-*.png"):
        p.unlink()
    assert main(["report", str(out)]) == 0
    assert list((out / "plots").glob("limits-*.png"))

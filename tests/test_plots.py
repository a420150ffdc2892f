"""Plots stay truthful with several knobs and conditions (issue 13, point 7)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from sim.report import plots
from sim.report.fmt import fmt_count, point_label, short_keys

KNOBS = ["envoy.listener.keepalive.idle", "envoy.upstream.keepalive.idle"]
CONDS = ["connections"]


def _points() -> pd.DataFrame:
    rows = []
    for i, (a, b, n) in enumerate(itertools.product([60, 300, 400], [120, 1000], [1000, 10000])):
        drops = (a > 350) * n + (b > 900) * n // 2
        rows.append({"point_id": f"p{i}", KNOBS[0]: a, KNOBS[1]: b, "connections": n, "replications": 2,
                     "silent_drops": 2 * drops, "nlcu_mean": n / 1e5, "nlcu_peak": n / 5e4})
    return pd.DataFrame(rows)


def test_short_keys_tell_keys_apart():
    assert short_keys(KNOBS + ["kernel.hz"]) == {KNOBS[0]: "listener.keepalive.idle",
                                                 KNOBS[1]: "upstream.keepalive.idle", "kernel.hz": "hz"}
    assert short_keys(["lb.idle_timeout"]) == {"lb.idle_timeout": "idle_timeout"}


def test_heatmap_gives_every_grid_point_its_own_cell_and_counts_as_integers():
    pp = _points()
    fig = plots.heatmap(pp, KNOBS[0], KNOBS[1:] + CONDS)
    ax = fig.axes[0]
    grid = ax.images[0].get_array()
    assert grid.shape == (4, 3)  # 2 upstream idles x 2 fleet sizes, by 3 listener idles
    assert int(np.count_nonzero(~np.isnan(np.asarray(grid, dtype=float)))) == len(pp)
    texts = [t.get_text() for t in ax.texts]
    assert "15000" in texts and not any(t.endswith(".0") for t in texts)
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert "upstream.keepalive.idle=1000, connections=10000" in rows
    plots.save(fig, "/dev/null")


def test_nlcu_chart_shows_every_fleet_size():
    pp = _points()
    fig = plots.nlcu(pp, KNOBS + CONDS)
    bars = fig.axes[0].patches
    assert len(bars) == 2 * len(pp)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert len(set(labels)) == len(pp) and any("connections=10000" in lab for lab in labels)
    plots.save(fig, "/dev/null")


def test_cost_vs_safety_labels_name_every_knob_and_never_share_a_spot():
    table = pd.DataFrame([
        {KNOBS[0]: 60, KNOBS[1]: 120, "safe": True, "ka_pps_per_1000": 30.0, "silent_drops": 0},
        {KNOBS[0]: 60, KNOBS[1]: 1000, "safe": False, "ka_pps_per_1000": 30.0, "silent_drops": 5},
        {KNOBS[0]: 400, KNOBS[1]: 1000, "safe": False, "ka_pps_per_1000": 0.0, "silent_drops": 9},
        {KNOBS[0]: 400, KNOBS[1]: 120, "safe": False, "ka_pps_per_1000": 0.0, "silent_drops": 9},
    ])
    fig = plots.cost_vs_safety(table, KNOBS, "aws-nlb-tcp")
    notes = [t for t in fig.axes[0].texts]
    texts = [t.get_text() for t in notes]
    assert "listener.keepalive.idle=60, upstream.keepalive.idle=120" in texts
    assert len({t.xy for t in notes}) == len(notes)  # settings on the same spot share one label
    assert any("(+1 more)" in t for t in texts)
    assert "aws-nlb-tcp" in fig.axes[0].get_xlabel()
    plots.save(fig, "/dev/null")


def test_cost_vs_safety_of_a_sampled_fleet_draws_expected_drops_with_error_bars():
    table = pd.DataFrame([
        {KNOBS[0]: 60, KNOBS[1]: 120, "safe": True, "ka_pps_per_1000": 30.0, "silent_drops": 0,
         "expected_drops_per_day": 0.0, "expected_drops_per_day_ci95": [0.0, 1800.0]},
        {KNOBS[0]: 400, KNOBS[1]: 120, "safe": False, "ka_pps_per_1000": 0.0, "silent_drops": 900,
         "expected_drops_per_day": 43200.0, "expected_drops_per_day_ci95": [40000.0, 47000.0]},
    ])
    fig = plots.cost_vs_safety(table, KNOBS, "aws-nlb-tcp")
    ax = fig.axes[0]
    bars = [c for c in ax.containers if c.__class__.__name__ == "ErrorbarContainer"]
    assert len(bars) == 2 and "per fleet-day" in ax.get_ylabel()
    segments = [seg for c in bars for seg in c.lines[2][0].get_segments()]
    assert sorted((float(sg[0][1]), float(sg[1][1])) for sg in segments) == [(0.0, 1800.0), (40000.0, 47000.0)]
    plots.save(fig, "/dev/null")


def test_timeline_names_lanes_by_leg_and_labels_never_overprint():
    trace = [(100.0 + 0.001 * k, "server", "PROBE", "sent") for k in range(20)]
    trace += [(100.0, "lb", "expired", "ipvs forgets"), (130.0, "client", "error", "ETIMEDOUT")]
    names = {"client": "Envoy (upstream side)", "lb": "kube-proxy-ipvs", "server": "upstream server"}
    fig = plots.timeline(trace, "t", 100.0, names)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(names.values())
    zoom = fig.axes[1]
    lo, hi = zoom.get_xlim()
    labels = sorted((t.xy[1], t.xy[0]) for t in zoom.texts)
    assert len(labels) >= 3
    for (y1, x1), (y2, x2) in itertools.pairwise(labels):
        assert y1 != y2 or x2 - x1 >= 0.025 * (hi - lo)  # never two labels on top of each other
    plots.save(fig, "/dev/null")


def test_point_labels_and_counts():
    assert fmt_count(5264.0) == "5264" and fmt_count(2.5) == "2.5"
    row = {KNOBS[0]: 300.0, "envoy.upstream.keepalive": '{"count":3,"idle":180,"interval":30}'}
    assert point_label(row, [KNOBS[0], "envoy.upstream.keepalive"]) == "idle=300, keepalive=180/30/3"


def test_occupancy_plot_shows_the_device_against_its_limit():
    """The Limits plot (issue 16 point 5): the peak per bucket as stored by the sweep, the limit as a
    line, and the moment the table first filled."""
    frame = pd.DataFrame({"t_s": [0.0, 60.0, 120.0], "bucket_s": 60.0, "occupancy_peak": [3, 10, 10],
                          "limit": 10})
    fig = plots.occupancy(frame, "linux-conntrack (downstream leg)", "flows", exhausted_at_s=65.0)
    ax = fig.axes[0]
    ys = [max(line.get_ydata()) for line in ax.get_lines()]
    assert 10 in ys  # the occupancy reaches the limit
    labels = [line.get_label() for line in ax.get_lines()]
    assert "limit (10 flows)" in labels and any(lab.startswith("full from t = 65") for lab in labels)
    limit = ax.get_lines()[labels.index("limit (10 flows)")]
    assert set(limit.get_ydata()) == {10}
    assert "linux-conntrack" in ax.get_title() and "flows" in ax.get_ylabel()
    assert ax.get_ylim()[1] > 10  # the limit line is not on the frame's edge
    plots.save(fig, "/dev/null")


def test_occupancy_plot_of_a_device_that_never_filled_has_no_full_marker():
    frame = pd.DataFrame({"t_s": [0.0, 60.0], "bucket_s": 60.0, "occupancy_peak": [3, 4], "limit": 64})
    fig = plots.occupancy(frame, "nat", "ports")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "limit (64 ports)" in labels and not any(lab.startswith("full") for lab in labels)
    plots.save(fig, "/dev/null")

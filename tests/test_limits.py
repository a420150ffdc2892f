"""Limits on the output side (issue 16 point 5): headroom_pct, the NLCU estimate split into its
dimensions, the occupancy time series of a limited device (stored by the sweep for the report's
Limits plot), and verdicts that fail on rejected or failed connects (point 4)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.metrics.capacity import combine_devices, device_figures, headroom_pct, peak_overlap
from sim.metrics.limits import limit_series_frame, occupancy_peaks
from sim.metrics.summary import summarize_one
from sim.report.verdict import per_knob, per_point


def _raw(n: int, m: int | None, duration: float = 200.0, profile: str = "linux-conntrack") -> dict:
    lb: dict = {"profile": profile}
    if m is not None:
        lb["max_flows"] = m
    return {"duration": duration, "connections": n, "kernel": {"hz": 250, "timers": "exact"},
            "network": {"one_way_delay": 0.001}, "lb": lb,
            "traffic": {"ramp": 0, "request_gap": {"fixed": 1000}, "service_time": {"fixed": 0}}}


def _run(raw: dict):
    sc = Scenario.model_validate(raw)
    rec = run_one(sc, 1)
    return summarize_one(rec, sc.duration), rec


# --- headroom_pct -------------------------------------------------------------------------------

def test_headroom_of_a_flow_table_is_its_free_share_at_the_peak():
    s, _ = _run(_raw(3, 4))
    dev = s["devices"][0]
    assert dev["flows_peak"] == 3 and dev["headroom_pct"] == pytest.approx(25.0)
    full, _ = _run(_raw(5, 2))
    assert full["devices"][0]["headroom_pct"] == 0.0


def test_an_unlimited_device_has_no_headroom():
    s, _ = _run(_raw(3, None))
    assert s["devices"][0]["headroom_pct"] is None


def test_headroom_is_keyed_off_field_names_ports_too():
    """A device with a port budget (fields of issue 16 point 2) is handled as one with a flow table;
    with both, the tighter one counts."""
    assert headroom_pct({"flows_limit": None, "flows_peak": 7, "ports_limit": 64, "ports_peak": 48}) == 25.0
    assert headroom_pct({"flows_limit": 100, "flows_peak": 10, "ports_limit": 64, "ports_peak": 48}) == 25.0
    assert headroom_pct({"flows_limit": None, "flows_peak": 7}) is None
    assert headroom_pct({"flows_peak": 7, "ports_limit": None, "ports_peak": 3}) is None


def test_combined_replications_take_the_headroom_of_the_worst_peak():
    a = {"name": "x", "leg": "downstream", "flows_peak": 5, "flows_limit": 10, "headroom_pct": 50.0}
    b = {**a, "flows_peak": 8, "headroom_pct": 20.0}
    assert combine_devices([[a], [b]])[0]["headroom_pct"] == pytest.approx(20.0)
    pa = {"name": "nat", "leg": "downstream", "flows_peak": 5, "flows_limit": None,
          "ports_limit": 100, "ports_peak": 90, "headroom_pct": 10.0}
    pb = {**pa, "ports_peak": 40, "headroom_pct": 60.0}
    dev = combine_devices([[pa], [pb]])[0]
    assert dev["ports_limit"] == 100 and dev["headroom_pct"] == pytest.approx(10.0)


# --- NLCU per dimension -------------------------------------------------------------------------

def _dev(**kw) -> dict:
    """A middlebox's export (sim.model.middlebox.Middlebox.export), made by hand."""
    base = {"name": "aws-nlb-tcp", "leg": "downstream", "keepalive_packets": 0, "lb_rsts": 0, "new_flows": 60,
            "intervals": [(0.0, 200.0)] * 30, "keepalive_per_bucket": [0, 0], "bytes_per_bucket": [60, 0],
            "new_flows_per_s": {0: 60},
            # small units so the figures are round: 1 new flow/s, 10 flows, 3600 B/h per unit
            "nlcu": {"new_flows_per_s": 1.0, "active_flows": 10.0, "bytes_per_hour": 3600.0,
                     "price_per_nlcu_hour_usd": 0.006, "price_per_hour_usd": 0.0225},
            "flows_limit": None, "connects_rejected": 0}
    return {**base, **kw}


def test_nlcu_per_dimension_are_means_over_the_run_and_name_the_billing_one():
    fig = device_figures(_dev(), 120.0, 60.0)
    # new flows: 60 in the first minute = 1/s = 1 unit, 0 in the second; active: 30 flows = 3 units in
    # both; bytes: 60 B in a minute = 3600 B/h = 1 unit, then 0
    assert fig["nlcu_new_flows"] == pytest.approx(0.5)
    assert fig["nlcu_active_flows"] == pytest.approx(3.0)
    assert fig["nlcu_bytes"] == pytest.approx(0.5)
    assert fig["nlcu_dimension"] == "active_flows"
    assert fig["nlcu_mean"] == pytest.approx(3.0)  # the largest dimension, minute by minute
    fig = device_figures(_dev(new_flows_per_s={0: 600, 60: 600}), 120.0, 60.0)
    assert fig["nlcu_new_flows"] == pytest.approx(10.0) and fig["nlcu_dimension"] == "new_flows"


def test_a_device_without_nlcu_figures_has_no_dimensions():
    fig = device_figures(_dev(nlcu=None), 120.0, 60.0)
    assert math.isnan(fig["nlcu_new_flows"]) and math.isnan(fig["nlcu_bytes"])
    assert fig["nlcu_dimension"] is None


def test_the_nlb_profile_units_give_the_dimensions_of_a_run():
    """The units come from the profile data (800 new flows/s, 100,000 flows, 1 GB/h): 30 flows opened
    just after t=0 and held for the run (shorter than the NLB's 350 s) are in the table at 4 of the 5
    one-minute marks, 30/100,000 active-flow units each."""
    s, _ = _run({**_raw(30, None, duration=300.0, profile="aws-nlb-tcp")})
    dev = s["devices"][0]
    assert dev["nlcu_active_flows"] == pytest.approx(4 / 5 * 30 / 100_000)
    assert dev["nlcu_dimension"] in ("new_flows", "active_flows", "bytes")
    dims = [dev["nlcu_new_flows"], dev["nlcu_active_flows"], dev["nlcu_bytes"]]
    assert max(dims) <= dev["nlcu_mean"] + 1e-12 <= sum(dims) + 1e-9
    combined = combine_devices([s["devices"], s["devices"]])[0]
    assert combined["nlcu_dimension"] == dev["nlcu_dimension"]
    assert combined["nlcu_active_flows"] == pytest.approx(dev["nlcu_active_flows"])


# --- the occupancy series of a limited device ---------------------------------------------------

def test_occupancy_peaks_per_bucket_see_the_peak_inside_a_bucket():
    ivs = [(0.0, 10.0), (5.0, 30.0), (6.0, 20.0), (65.0, 130.0)]
    assert list(occupancy_peaks(ivs, 120.0, 60.0)) == [3, 1]
    assert max(occupancy_peaks(ivs, 120.0, 60.0)) == peak_overlap(ivs)
    # an entry ending exactly at a bucket's start is gone there (as active_flows_at counts)
    assert list(occupancy_peaks([(0.0, 60.0)], 120.0, 60.0)) == [1, 0]
    assert list(occupancy_peaks([], 120.0, 60.0)) == [0, 0]


def test_limit_series_holds_only_limited_devices_and_its_peak_is_the_reported_one():
    s, rec = _run(_raw(5, 2, duration=300.0))
    frame = limit_series_frame(rec.series, 300.0)
    assert list(frame["kind"].unique()) == ["flows"] and set(frame["limit"]) == {2}
    assert frame["occupancy_peak"].max() == s["devices"][0]["flows_peak"] == 2
    assert len(frame) == 5  # five one-minute buckets: bounded by buckets, not records
    _, free = _run(_raw(5, None, duration=300.0))
    assert limit_series_frame(free.series, 300.0).empty


def test_the_port_series_is_the_fullest_budget_against_one_budgets_limit():
    """Ports are held as (start, end, budget) with one budget per client instance: the plot compares
    the fullest budget in each bucket with the limit of one."""
    dev = _dev(flows_limit=None, ports_limit=2, intervals=[],
               port_intervals=[(0.0, 100.0, 0), (10.0, 100.0, 0), (0.0, 30.0, 1), (70.0, 130.0, 1)])
    frame = limit_series_frame({"bucket_s": 60.0, "devices": [dev]}, 180.0)
    assert list(frame["kind"]) == ["ports"] * 3
    assert list(frame["occupancy_peak"]) == [2, 2, 1]  # budget 0 holds 2 till 100 s; budget 1 one at a time


# --- verdicts: rejected connects are unsafe -----------------------------------------------------

def _points(**over) -> pd.DataFrame:
    row = {"point_id": "p0", "point_index": 0, "replication": 0, "error": "", "k": 1, "connections": 10,
           "silent_drops": 0, "failed_requests": 0, "requests": 10, "min_slack_s": 5.0, "at_risk_gaps": 0,
           "keepalive_pps": 0.0, "detect_s_max": math.nan, "zombie_s_total": 0.0, "hang_s_total": 0.0,
           "hang_s_open_total": 0.0, "requests_in_flight_at_end": 0, "zombies_peak": 0, "keepalive_packets": 0,
           "lb_rsts": 0, "new_flows": 10, "connect_failures": 0,
           "devices": '[{"name": "linux-conntrack", "leg": "downstream", "flows_peak": 8, "flows_limit": 8, '
                      '"connects_rejected": 0}]'}
    from sim.metrics.capacity import CAPACITY_FIELDS
    from sim.metrics.summary import OTHER_FAILURE_FIELDS, REASON_FIELDS
    row.update({f: 0.0 for f in CAPACITY_FIELDS})
    row.update({f: 0 for f in REASON_FIELDS + OTHER_FAILURE_FIELDS})
    row.update(over)
    return pd.DataFrame([row])


def test_a_point_with_failed_connects_is_not_safe_and_says_why():
    pp = per_point(_points(connect_failures=3), ["k"], 10)
    assert not pp["safe"].iloc[0] and pp["why"].iloc[0] == "rejected connects"
    ok = per_point(_points(), ["k"], 10)
    assert ok["safe"].iloc[0] and ok["why"].iloc[0] == ""


def test_rejected_syns_alone_make_a_point_unsafe():
    """A SYN the table refused that a retry later got through still counts (connects_rejected)."""
    dev = '[{"name": "t", "leg": "downstream", "flows_peak": 8, "flows_limit": 8, "connects_rejected": 4}]'
    pp = per_point(_points(devices=dev), ["k"], 10)
    assert not pp["safe"].iloc[0] and pp["why"].iloc[0] == "rejected connects"
    assert pp["connects_rejected"].iloc[0] == 4


def test_silent_drops_and_rejected_connects_say_both():
    drops = per_point(_points(silent_drops=2), ["k"], 10)
    assert drops["why"].iloc[0] == "silent drops"
    both = per_point(_points(silent_drops=2, connect_failures=1), ["k"], 10)
    assert both["why"].iloc[0] == "silent drops and rejected connects"
    pp = pd.concat([per_point(_points(silent_drops=2), ["k"], 10),
                    per_point(_points(point_id="p1", point_index=1, connect_failures=1), ["k"], 10)],
                   ignore_index=True).assign(predicted_margin_s=10.0)
    table = per_knob(pp, ["k"])
    assert not table["safe"].iloc[0] and table["why"].iloc[0] == "silent drops and rejected connects"


@pytest.mark.parametrize("on_full", ["drop", "rst"])
def test_the_reference_engine_gives_the_same_limits_figures_and_series(on_full):
    from sim.spec import Shortcuts

    raw = _raw(5, 2, duration=300.0)
    raw["lb"]["on_full"] = on_full
    sc = Scenario.model_validate(raw)
    fast, ref = run_one(sc, 1), run_one(sc, 1, shortcuts=Shortcuts.none())
    assert summarize_one(fast, 300.0)["devices"] == summarize_one(ref, 300.0)["devices"]
    pd.testing.assert_frame_equal(limit_series_frame(fast.series, 300.0), limit_series_frame(ref.series, 300.0))


def test_the_knob_threshold_compares_the_timer_rule_with_silent_drops_only():
    """thresholds() sets the timer-wheel prediction against the first knob value that dropped; a value
    unsafe only for rejected connects is no drop threshold."""
    from sim.report.verdict import thresholds

    pp = pd.concat([per_point(_points(k=1, connect_failures=2), ["k"], 10),
                    per_point(_points(point_id="p1", point_index=1, k=2, silent_drops=3), ["k"], 10)],
                   ignore_index=True).assign(predicted_margin_s=[1.0, -1.0])
    assert thresholds(pp, "k", []) == [{"condition": {}, "predicted_first_unsafe": 2, "observed_first_unsafe": 2}]

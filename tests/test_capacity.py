"""Capacity figures: the keepalive rate of an idle fleet against its closed form, storms, NLCU."""

from __future__ import annotations

import numpy as np
import pytest

from sim.config.load import load_config
from sim.execution import run_one
from sim.metrics.capacity import active_flows_at
from sim.metrics.summary import summarize_one
from sim.report.verdict import idle_keepalive_pps


def test_idle_fleet_keepalive_rate_matches_closed_form():
    # configs/fleet-idle.yaml at 2,000 connections (exact timers): a probe and its ACK per connection
    # every I + RTT = 300.004 s.
    sc = load_config("configs/fleet-idle.yaml", ["connections=2000"]).scenario
    s = summarize_one(run_one(sc, 1), sc.duration)
    period = 300 + 0.004
    expected = 2 * 2000 / period
    assert idle_keepalive_pps(sc) == pytest.approx(expected, rel=1e-12)
    # The slots open over the 60 s ramp, so every connection's probes fall exactly 6 times in the
    # second half [1800 s, 3600 s): 1800 / 300.004 = 5.9999, and each count is whole.
    assert s["keepalive_pps_steady"] == pytest.approx(2 * 2000 * 6 / 1800, rel=1e-12)
    # which is the closed form to within the RTT the window leaves out: 6 x 300.004 > 1800
    assert s["keepalive_pps_steady"] == pytest.approx(expected, rel=0.004 / 300 + 1e-12)
    assert s["silent_drops"] == 0
    assert s["lb_active_flows_peak"] == 2000


def test_reconnect_storm_peak_new_flows_and_nlcu():
    sc = load_config("configs/reconnect-storm.yaml", ["connections=3000", "duration=15m"]).scenario
    s = summarize_one(run_one(sc, 1), sc.duration)
    # all 3,000 open at t=0, all meet an RST at ~400 s and reconnect in the same second; the next
    # request, 400 s later on the new connection, meets the same fate (~800 s): two storms in 15 min
    assert s["new_flows_peak_per_s"] == 3000
    assert s["failed_requests"] == 2 * 3000
    assert s["failed_requests_peak_per_s"] == 3000  # the failure burst: all in one second
    assert s["nlcu_peak"] == pytest.approx(3000 / 60 / 800, rel=1e-12)  # the new-flow dimension wins
    assert s["lb_cost_per_hour_usd"] > 0.0225


def test_active_flows_sampled_per_minute():
    got = active_flows_at([(0.0, 90.0), (30.0, 200.0), (150.0, 400.0)], np.arange(0.0, 300.0, 60.0))
    assert list(got) == [1, 2, 1, 2, 1]  # at minutes 0, 1, 2, 3, 4

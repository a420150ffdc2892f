"""Terminating-hop and application behaviour (issue 4): long polls, the keep-alive race, gRPC pings."""

from __future__ import annotations

import pytest

from sim.config.load import load_config
from sim.model.scenario import run_one
from sim.report.summary import summarize_one


def _summary(path: str, *sets: str) -> dict:
    sc = load_config(path, list(sets)).scenario
    return summarize_one(run_one(sc, 1), sc.duration)


LONGPOLL = "configs/longpoll-envoy.yaml"


def test_long_poll_default_envoy_timers_fail_with_504_after_15s():
    sc = load_config(LONGPOLL, ["connections=1", "duration=40s"]).scenario
    rec = run_one(sc, 1)
    c = rec.columns
    i = c["conn_id"].index(0)
    assert c["route_timeouts"][i] >= 1
    assert c["failed_requests"][i] >= 1
    assert c["hang_s"][i] / c["failed_requests"][i] == pytest.approx(15.0, abs=0.05)


def test_long_poll_without_timers_or_keepalive_is_silently_dropped():
    s = _summary(LONGPOLL, "envoy.listener.route_timeout=0", "envoy.listener.stream_idle_timeout=0",
                 "connections=5", "duration=30m")
    assert s["silent_drops"] > 0
    assert s["route_timeouts"] == 0
    assert s["requests_in_flight_at_end"] + s["failed_requests"] > 0  # the responses never arrive


def test_long_poll_with_listener_keepalive_300_completes():
    s = _summary(LONGPOLL, "envoy.listener.route_timeout=0", "envoy.listener.stream_idle_timeout=0",
                 "envoy.listener.keepalive={idle: 300, interval: 20, count: 4}", "connections=5", "duration=30m")
    assert s["silent_drops"] == 0
    assert s["failed_requests"] == 0
    assert s["requests"] - s["requests_in_flight_at_end"] >= 5  # one 20-minute poll per connection done


INVERSION = "configs/keepalive-inversion.yaml"


def test_keepalive_inversion_races_when_envoy_keeps_connections_longer_than_the_server():
    s = _summary(INVERSION, "connections=50", "duration=20m")
    assert s["race_resets"] > 0
    assert s["failed_requests"] == s["race_resets"]
    assert s["outcomes"].get("race_reset", 0) > 0


def test_no_race_when_envoy_upstream_idle_is_below_the_servers():
    s = _summary(INVERSION, "connections=50", "duration=20m", "envoy.upstream.idle_timeout=4s")
    assert s["race_resets"] == 0
    assert s["failed_requests"] == 0


def test_retry_on_reset_hides_the_race():
    s = _summary(INVERSION, "connections=50", "duration=20m", "envoy.upstream.retry_on_reset=true")
    assert s["failed_requests"] == 0


GRPC = "configs/grpc-pings.yaml"


def test_grpc_pings_every_10s_against_300s_minimum_get_goaway():
    s = _summary(GRPC, "connections=10", "duration=10m")
    assert s["goaways"] > 0
    assert s["outcomes"].get("goaway", 0) > 0


def test_grpc_pings_every_10_minutes_get_no_goaway():
    s = _summary(GRPC, "connections=10", "duration=1h", "client.ping_interval=10m")
    assert s["goaways"] == 0


def test_client_request_timeout_fails_the_request_and_replaces_the_connection():
    s = _summary(LONGPOLL, "envoy.listener.route_timeout=0", "envoy.listener.stream_idle_timeout=0",
                 "client.request_timeout=30s", "connections=2", "duration=5m")
    assert s["client_timeouts"] > 0
    assert s["connections"] > 2

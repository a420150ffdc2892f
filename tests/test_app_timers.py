"""Terminating-hop and application behaviour (issue 4): long polls, the keep-alive race, gRPC pings."""

from __future__ import annotations

import pytest

from sim.config.load import load_config
from sim.execution import run_one
from sim.metrics.summary import summarize_one


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
    # the route timer starts when the request reaches Envoy (client -> NLB -> Envoy: 2 hops of 1 ms)
    # and the 504 takes 2 hops back; Envoy's timers are not on the kernel's timer wheel
    assert c["hang_s"][i] / c["failed_requests"][i] == pytest.approx(15.0 + 2 * 2 * 0.001, abs=1e-9)


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
    df = _legs(INVERSION, "connections=50", "duration=20m", "envoy.upstream.retry_on_reset=true")
    up, down = df[df["leg"] == "upstream"], df[df["leg"] == "downstream"]
    # the race happened: Envoy's side of upstream rows met the server's FIN with a request in flight
    raced = int(up["race_resets"].sum())
    assert raced > 0
    assert (up["client_outcome"] == "race_reset").sum() == raced  # one race per upstream connection
    assert up["failed_requests"].sum() == raced
    # ... and every raced request was sent again, once, on a new upstream connection
    assert up["requests"].sum() == down["requests"].sum() + raced
    # so the client saw none of it
    assert down["failed_requests"].sum() == 0
    assert down["envoy_503s"].sum() == 0
    assert set(down["client_outcome"]) == {"ok"}


GRPC = "configs/grpc-pings.yaml"


def test_grpc_pings_every_10s_against_300s_minimum_get_goaway():
    s = _summary(GRPC, "connections=10", "duration=10m")
    assert s["goaways"] > 0
    assert s["outcomes"].get("goaway", 0) > 0


def _pings_every_10_minutes(*sets: str) -> dict:
    """One request, then only pings every 10 min for an hour, through an NLB that forgets a flow after
    20 min: the pings alone keep it, and the server counts them against its policy."""
    return _summary(GRPC, "connections=10", "duration=1h", "client.ping_interval=10m", "lb.idle_timeout=20m",
                    "traffic.request_gap={fixed: 2h}", "kernel.timers=exact", *sets)


def test_grpc_pings_every_10_minutes_get_no_goaway():
    s = _pings_every_10_minutes()
    assert s["goaways"] == 0
    assert s["silent_drops"] == 0  # the pings were sent: they kept the 20-minute NLB flow alive
    assert s["connections"] == 10
    # and the server counted them: the same pings against an 11-minute minimum interval are strikes
    # (at 20, 30 and 40 min; the third is one more than max_ping_strikes=2), so GOAWAY at 40 min
    strict = _pings_every_10_minutes("upstream.grpc.min_ping_interval=11m")
    assert strict["goaways"] == 10
    # without pings the same flows are forgotten
    assert _pings_every_10_minutes("client.ping_interval=0")["silent_drops"] == 10


def test_client_request_timeout_fails_the_request_and_replaces_the_connection():
    s = _summary(LONGPOLL, "envoy.listener.route_timeout=0", "envoy.listener.stream_idle_timeout=0",
                 "client.request_timeout=30s", "connections=2", "duration=5m")
    assert s["client_timeouts"] > 0
    assert s["connections"] > 2


NLB_TLS = "configs/nlb-tls.yaml"


def _legs(path: str, *sets: str):
    import pandas as pd

    sc = load_config(path, list(sets)).scenario
    return pd.DataFrame(run_one(sc, 1).columns)


def test_nlb_tls_client_keepalive_protects_both_legs_through_its_20s_keepalives():
    df = _legs(NLB_TLS, "connections=10")
    assert set(df["leg"]) == {"downstream", "lb_backend", "upstream"}
    assert not df["silent_drop"].any()
    assert df["failed_requests"].sum() == 0
    # Envoy sends no probes of its own, yet its leg is kept alive: by the NLB's keepalives
    assert df[df["leg"] == "lb_backend"]["keepalive_probes"].sum() == 0


def test_nlb_tls_without_client_keepalive_drops_both_legs():
    df = _legs(NLB_TLS, "connections=10", "client.keepalive=off")
    for leg in ("downstream", "lb_backend"):
        assert df[df["leg"] == leg]["silent_drop"].any(), leg


def test_client_probes_stop_at_a_terminating_lb():
    s = _summary(NLB_TLS, "connections=5", "duration=30m", "kernel.timers=exact")
    # the NLB answers the client's probes itself and starts its own keepalives on both legs:
    # per connection, client probe + ACK every 60 s plus 2 legs x (probe + ACK) every 20 s, counted
    # over the 15 whole minutes of the second half (no request falls in it: the gap is 30 min)
    assert s["keepalive_pps_steady"] == pytest.approx(5 * (2 / 60 + 4 / 20), abs=1e-9)


def test_alb_closes_idle_connections_with_fin_and_keepalive_does_not_help():
    df = _legs("configs/alb-envoy.yaml", "connections=10", "duration=20m")
    down = df[df["leg"] == "downstream"]
    assert not df["silent_drop"].any()
    assert (down["client_outcome"] == "closed_idle").sum() > 0
    assert df["failed_requests"].sum() == 0


def test_alb_nlb_chain_needs_envoy_keepalive_on_the_back_leg():
    without = _legs("configs/alb-nlb-chain.yaml", "connections=10")
    assert without[without["leg"] == "lb_backend"]["silent_drop"].any()
    assert not without[without["leg"] == "downstream"]["silent_drop"].any()
    fixed = _legs("configs/alb-nlb-chain.yaml", "connections=10",
                  "envoy.listener.keepalive={idle: 300, interval: 20, count: 4}")
    assert not fixed["silent_drop"].any()


def test_tcp_proxy_idle_timeout_counts_bytes_and_closes_both_legs():
    df = _legs("configs/nlb.yaml", "connections=5", "replications=1", "duration=30m",
               "envoy.listener.protocol=tcp_proxy", "envoy.listener.idle_timeout=60s",
               "traffic.request_gap={fixed: 120s}")
    down = df[df["leg"] == "downstream"]
    assert (down["client_outcome"] == "closed_idle").sum() > 0  # Envoy closed quiet connections
    assert df["failed_requests"].sum() == 0


def test_client_pool_idle_timeout_closes_and_reopens_on_demand():
    df = _legs("configs/nlb.yaml", "connections=5", "replications=1", "duration=30m", "client.pool.idle_timeout=60s",
               "traffic.request_gap={fixed: 120s}")
    down = df[df["leg"] == "downstream"]
    assert (down["client_outcome"] == "closed_idle").sum() > 0
    assert down["requests"].sum() == 5 * 15  # one request every ~120 s, each on a fresh connection
    assert df["failed_requests"].sum() == 0


def test_a_closed_connection_dying_later_does_not_open_another():
    # Envoy idle-closes the client's connection (FIN); the client closes its side. Its socket's
    # keepalive would later kill it (the LB, which forgot the flow after the FINs, drops the probes):
    # a closed socket runs no timers (docs/model.md), and an error from a connection the slot already
    # left would open nothing. A connection lives at least Envoy's 45 s idle timeout here, so
    # 1,200 s hold at most 27.
    sc = load_config("configs/nlb.yaml", ["connections=1", "duration=1200s", "network.one_way_delay=10ms",
                                          "kernel.timers=exact", "traffic.request_gap={exponential: 30s}",
                                          "client.keepalive={idle: 2s}", "client.user_timeout=30.5",
                                          "lb={profile: azure-lb, idle_timeout: 340s, late_packet: drop}",
                                          "envoy.listener={idle_timeout: 45s}"]).scenario
    c = run_one(sc, 1).columns
    downstream = [i for i, leg in enumerate(c["leg"]) if leg == "downstream"]
    assert 2 <= len(downstream) <= 1200 / 45 + 1
    assert not any(c["client_outcome"][i] == "timeout_keepalive" for i in downstream)

"""Every failed request has one reason, hung requests count as failures, and every capacity figure
belongs to one named device (issue 13, points 3, 4 and 5)."""

from __future__ import annotations

import pytest

from sim.config.load import load_config
from sim.config.schema import Scenario
from sim.execution import run_one
from sim.facts.names import FAILURE_REASONS
from sim.metrics.summary import REASON_FIELDS, summarize_one
from sim.report.verdict import failure_split, predicted_margin_s


def _run(raw: dict, seed: int = 1) -> tuple[dict, dict]:
    sc = Scenario.model_validate(raw)
    rec = run_one(sc, seed)
    return summarize_one(rec, sc.duration), rec.columns


def _long_stream(**envoy_listener) -> dict:
    """One client, one 30-minute stream through a 350 s NLB to Envoy, Envoy's own timers off: the NLB
    forgets the flow at 350 s; the response at 1800 s meets its RST on Envoy's side, and the client
    waits for ever."""
    return {
        "duration": 3600, "connections": 1, "kernel": {"hz": 250, "timers": "exact"},
        "traffic": {"request_gap": {"fixed": 7200}, "service_time": {"fixed": 1800}},
        "lb": {"profile": "aws-nlb-tcp", "idle_timeout": 350},
        "envoy": {"listener": {"route_timeout": 0, "stream_idle_timeout": 0, **envoy_listener}},
    }


def test_a_request_waiting_on_a_silently_dropped_connection_is_a_hung_failure():
    s, c = _run(_long_stream())
    assert s["silent_drops"] >= 1
    assert s["requests"] == 1
    assert s["failed_requests"] == 1
    assert s["failure_reasons"]["hung"] == 1
    assert s["requests_in_flight_at_end"] == 1  # a hung request is failed and still in flight
    assert s["hang_s_total"] == 0.0  # it never ended
    # sent once the handshake is done (one round trip, 4 ms), still waiting at the end
    assert s["hang_s_open_total"] == pytest.approx(3600.0 - 0.004, abs=1e-9)
    i = c["leg"].index("downstream")
    assert c["hung"][i] == 1 and c["hang_s_open"][i] == pytest.approx(3600.0 - 0.004, abs=1e-9)


def test_a_request_still_waiting_on_a_live_connection_is_not_hung():
    # listener keepalive holds the NLB: the stream is merely long, not lost
    s, _ = _run(_long_stream(keepalive={"idle": 300, "interval": 20, "count": 4}))
    assert s["silent_drops"] == 0
    assert s["requests_in_flight_at_end"] == 0 or s["failure_reasons"]["hung"] == 0
    assert s["failed_requests"] == 0


def test_hung_on_the_upstream_leg():
    # IPVS (900 s, late packets dropped) forgets Envoy's upstream flow during a 40-minute poll
    raw = {
        "duration": 3600, "connections": 1, "kernel": {"hz": 250, "timers": "exact"},
        "traffic": {"request_gap": {"fixed": 7200}, "service_time": {"fixed": 2400}},
        "envoy": {"listener": {"route_timeout": 0, "stream_idle_timeout": 0,
                               "keepalive": {"idle": 60, "interval": 10, "count": 3}}},
        "upstream": {"lb": "kube-proxy-ipvs"},
    }
    s, c = _run(raw)
    assert s["failure_reasons"]["hung"] == 1
    up = c["leg"].index("upstream")
    assert c["hung"][up] == 1


def _reasons_sum_to_failed(s: dict) -> None:
    assert sum(s["failure_reasons"].values()) == s["failed_requests"]
    assert set(s["failure_reasons"]) == set(FAILURE_REASONS)


@pytest.mark.parametrize("path, sets, reason", [
    ("configs/envoy-ipvs.yaml", ["connections=40", "duration=2h"], "route_timeout"),
    ("configs/envoy-ipvs.yaml", ["connections=40", "duration=2h", "envoy.listener.route_timeout=0",
                                 "envoy.listener.stream_idle_timeout=0"], "timeout"),
    ("configs/azure-lb-haproxy.yaml", ["connections=40", "duration=2h", "replications=1"], "reset"),
    ("configs/keepalive-inversion.yaml", ["connections=30", "duration=20m"], "race_reset"),
    ("configs/grpc-pings.yaml", ["connections=20", "duration=20m", "traffic.service_time={fixed: 60s}"],
     "goaway"),
])
def test_every_failure_has_a_reason(path, sets, reason):
    sc = load_config(path, sets).scenario
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert s["failed_requests"] > 0
    _reasons_sum_to_failed(s)
    assert s["failure_reasons"][reason] > 0
    assert reason in failure_split(s)


def test_failure_split_names_503s_and_statuses():
    row = dict.fromkeys(REASON_FIELDS, 0) | {"resets": 7, "hung": 2, "route_timeouts": 3, "envoy_503s": 7,
                                              "goaways": 0}
    assert failure_split(row) == "reset 7, hung 2, route_timeout 3 (504); 503 from Envoy 7"
    assert failure_split(dict.fromkeys(REASON_FIELDS, 0)) == ""


def test_upstream_reset_reaches_the_client_as_a_503_with_its_reason():
    # IPVS with RSTs for late packets: Envoy's pooled upstream connection is reset, Envoy answers 503
    sc = load_config("configs/envoy-ipvs.yaml", ["connections=40", "duration=3h",
                                                  "upstream.lb.late_packet=rst_to_sender"]).scenario
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert s["envoy_503s"] > 0
    assert s["failure_reasons"]["reset"] >= s["envoy_503s"] - s["failure_reasons"]["race_reset"]
    _reasons_sum_to_failed(s)


NLB_IPVS = {
    "duration": 3600, "connections": 20, "kernel": {"hz": 250, "timers": "exact"},
    "traffic": {"request_gap": {"fixed": 1000}},
    "lb": {"profile": "aws-nlb-tcp", "idle_timeout": 350},
    "envoy": {"listener": {"keepalive": False}, "upstream": {"keepalive": {"idle": 60, "interval": 10, "count": 3}}},
    "upstream": {"lb": "kube-proxy-ipvs"},
}


def test_devices_are_per_middlebox_and_lb_figures_are_the_client_facing_lbs():
    s, _ = _run(NLB_IPVS)
    names = [(d["name"], d["leg"]) for d in s["devices"]]
    assert names == [("aws-nlb-tcp", "downstream"), ("kube-proxy-ipvs", "upstream")]
    nlb, ipvs = s["devices"]
    # the listener keepalive is off: no probe crosses the NLB; Envoy's upstream probes cross IPVS
    assert nlb["keepalive_pps"] == 0
    assert ipvs["keepalive_pps"] > 0
    assert s["lb_keepalive_pps"] == 0
    assert s["keepalive_pps"] == pytest.approx(ipvs["keepalive_pps"])  # every middlebox together
    # lb_* is the NLB alone, peak and mean alike
    assert s["lb_active_flows_peak"] == nlb["flows_peak"]
    assert s["lb_active_flows_mean"] == pytest.approx(nlb["flows_mean"])
    assert nlb["flows_peak"] <= 20 and ipvs["flows_peak"] <= 20
    for d in s["devices"]:
        assert set(d) >= {"name", "leg", "flows_peak", "flows_mean", "new_flows_peak_per_s", "keepalive_pps",
                          "nlcu_mean"}
    assert nlb["nlcu_mean"] > 0  # the NLB profile has NLCU figures; IPVS has none
    assert ipvs["nlcu_mean"] != ipvs["nlcu_mean"]  # NaN


def test_predicted_margin_takes_the_upstream_leg_into_account():
    # listener keepalive 60 s is far inside the 350 s NLB; upstream keepalive 1000 s is beyond IPVS's 900 s
    raw = NLB_IPVS | {"envoy": {"listener": {"keepalive": {"idle": 60, "interval": 10, "count": 3}},
                                "upstream": {"keepalive": {"idle": 1000, "interval": 10, "count": 3}}}}
    margin = predicted_margin_s(Scenario.model_validate(raw))
    assert margin == pytest.approx(900 - 1000 - 2 * 0.001, abs=1e-9)
    # no keepalive at all through IPVS: no prediction, rather than the NLB leg's comfortable margin
    raw["envoy"]["upstream"]["keepalive"] = False
    assert predicted_margin_s(Scenario.model_validate(raw)) is None


def test_memory_does_not_grow_with_simulated_time():
    # two quiet connections for a year: the per-second and per-minute series must not span the year
    import tracemalloc

    from sim.model.middlebox import MAX_SERIES_BUCKETS

    raw = {"duration": 365 * 86400, "connections": 2, "traffic": {"request_gap": {"fixed": 30 * 86400}},
           "lb": "aws-nlb-tcp", "envoy": {"listener": {"keepalive": {"idle": 300, "interval": 20, "count": 4},
                                                       "idle_timeout": 0}, "upstream": {"idle_timeout": 0}}}
    sc = Scenario.model_validate(raw)
    tracemalloc.start()
    try:
        rec = run_one(sc, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MiB"
    dev = rec.series["devices"][0]
    assert len(dev["bytes_per_bucket"]) <= MAX_SERIES_BUCKETS
    assert rec.series["bucket_s"] == 60 * 27  # 525,600 minutes in buckets of whole minutes
    s = summarize_one(rec, sc.duration)
    assert s["silent_drops"] == 0 and s["lb_keepalive_pps"] > 0

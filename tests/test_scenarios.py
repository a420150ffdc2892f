"""Whole-scenario behaviour: the seed question, detection times, boundaries, determinism."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from sim.cli import main
from sim.config.load import load_config
from sim.config.schema import Scenario
from sim.execution import run_one
from sim.execution.runner import run_scenario
from sim.metrics.summary import summarize_one

NLB = "configs/nlb.yaml"


def _json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_seed_scenario_keepalive_300_prevents_drops(capsys):
    s = _json(capsys, "run", NLB, "--json")
    assert s["silent_drops"] == 0
    assert s["failed_requests"] == 0
    assert s["keepalive_packets"] > 0
    assert s["min_slack_s"] > 0


def test_seed_scenario_without_keepalive_drops_and_says_how(capsys):
    s = _json(capsys, "run", NLB, "--json", "--set", "envoy.listener.keepalive=off")
    assert s["silent_drops"] > 0
    assert s["failed_requests"] > 0
    # NLB answers late data with RST: the client finds out by sending; Envoy's side stays a zombie
    assert s["outcomes"].get("reset_on_send", 0) > 0
    assert s["zombies_peak"] > 0
    assert s["keepalive_packets"] == 0


def test_same_seed_same_summary_apart_from_run(capsys):
    a = _json(capsys, "run", NLB, "--json", "--set", "connections=30", "--set", "replications=2")
    b = _json(capsys, "run", NLB, "--json", "--set", "connections=30", "--set", "replications=2")
    a.pop("run"), b.pop("run")
    assert a == b
    c = _json(capsys, "run", NLB, "--json", "--set", "connections=30", "--set", "replications=2", "--set", "seed=2")
    c.pop("run")
    assert c != a


def _single(overrides: dict) -> Scenario:
    base = {
        "connections": 1, "duration": "1h", "replications": 1,
        "kernel": {"hz": 250, "timers": "exact"},
        "traffic": {"request_gap": {"fixed": "2000s"}},
        "network": {"one_way_delay": "1ms"},
    }
    base.update(overrides)
    return Scenario.model_validate(base)


def test_detection_time_formula_blackhole_lb():
    # DESIGN / issue: detect = keepidle + count*interval - (last received segment → drop).
    idle, intvl, cnt, lb_timeout, d = 400, 10, 3, 240.0, 0.001
    sc = _single({"client": {"keepalive": {"idle": idle, "interval": intvl, "count": cnt}},
                  "lb": {"profile": "azure-lb", "idle_timeout": "240s"}})
    rec = run_one(sc, 7)
    c = rec.columns
    i = c["conn_id"].index(0)
    assert c["silent_drop"][i]
    assert c["client_outcome"][i] == "timeout_keepalive"
    assert c["server_outcome"][i] == "zombie"
    # the client's last received segment is the response; its ACK reaches the LB one hop later
    last_rx_to_drop = lb_timeout + d
    assert c["client_detect_s"][i] == pytest.approx(idle + cnt * intvl - last_rx_to_drop, abs=1e-9)
    assert math.isnan(c["server_detect_s"][i])


def test_nat_gateway_rsts_inside_host_data_after_expiry():
    sc = _single({"lb": {"profile": "aws-nat-gateway"}, "traffic": {"request_gap": {"fixed": "400s"}}})
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert s["failed_requests"] > 0
    assert s["outcomes"]["reset_on_send"] > 0


def test_data_into_blackhole_hangs_until_retransmission_timeout():
    # R35: a request into a forgotten flow that drops late packets: ETIMEDOUT ~928.9 s after the send.
    sc = _single({"lb": {"profile": "azure-lb", "idle_timeout": "240s"},
                  "traffic": {"request_gap": {"fixed": "300s"}}, "duration": "2000s"})
    rec = run_one(sc, 1)
    c = rec.columns
    i = c["conn_id"].index(0)
    assert c["client_outcome"][i] == "timeout_retrans"
    assert c["failed_requests"][i] == 1
    assert c["hang_s"][i] == pytest.approx(928.896, abs=1e-9)  # exact timers


@pytest.mark.parametrize("idle, safe", [(349, True), (350, False)])
def test_exact_timers_349_safe_350_unsafe_against_350s_nlb(idle, safe):
    # Probe at last_rx + I reaches the LB 2 hops after Envoy's last received segment passed it.
    sc = _single({"lb": {"profile": "aws-nlb-tcp", "idle_timeout": "350s"},
                  "traffic": {"request_gap": {"fixed": "1000s"}}, "duration": "3000s",
                  "envoy": {"listener": {"keepalive": {"idle": idle, "interval": 20, "count": 4}}}})
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert (s["silent_drops"] == 0) is safe


def test_azure_tcp_reset_announces_expiry():
    sc = _single({"lb": {"profile": "azure-lb-tcp-reset"}, "traffic": {"request_gap": {"fixed": "600s"}}})
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert s["silent_drops"] == 0
    assert s["outcomes"]["reset_on_expiry"] > 0


def test_conntrack_pickup_heals_the_flow():
    sc = _single({"lb": {"profile": "linux-conntrack", "idle_timeout": "300s"},
                  "traffic": {"request_gap": {"fixed": "400s"}}})
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert s["failed_requests"] == 0
    assert s["new_flows"] > 1  # re-created mid-stream


def test_run_writes_outputs(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["run", NLB, "--set", "connections=5", "--set", "replications=1", "--out", str(out)]) == 0
    import pandas as pd

    df = pd.read_parquet(out / "connections.parquet")
    assert {"conn_id", "leg", "outcome", "silent_drop", "drop_at_s", "client_detect_s"} <= set(df.columns)
    assert json.loads((out / "summary.json").read_text())["connections"] >= 5
    assert "sim_version" in (out / "config.resolved.yaml").read_text()


def test_socket_options_and_keepalive_spellings_agree():
    loaded = load_config(NLB)
    ka = loaded.scenario.envoy.listener.keepalive
    assert (ka.enabled, ka.idle, ka.interval, ka.count) == (True, 300, 20, 4)
    loaded = load_config(NLB, ["envoy.listener.keepalive.idle=320"])
    ka = loaded.scenario.envoy.listener.keepalive
    assert (ka.idle, ka.interval, ka.count) == (320, 20, 4)


def test_run_scenario_counts_replications():
    sc = _single({"lb": {"profile": "aws-nlb-tcp"}, "replications": 3})
    res = run_scenario(sc)
    assert len(res.records) == 3


@pytest.mark.parametrize("config", [NLB, "configs/nlb-tls.yaml", "configs/keepalive-inversion.yaml"])
def test_a_fleet_simulated_in_chunks_gives_the_same_records(config):
    # run_one simulates big fleets a chunk of slots at a time (CHUNK_SLOTS); 7 slots per chunk here
    from sim.metrics.capacity import series_frame

    sc = load_config(config, ["connections=40", "duration=1h", "replications=1"]).scenario
    whole = run_one(sc, 5, trace_conn=3_000_000, chunk_slots=0)
    chunked = run_one(sc, 5, trace_conn=3_000_000, chunk_slots=7)
    pd.testing.assert_frame_equal(pd.DataFrame(whole.columns), pd.DataFrame(chunked.columns))
    assert whole.counters == chunked.counters
    assert whole.trace == chunked.trace and whole.trace
    assert sorted(whole.flow_intervals) == sorted(chunked.flow_intervals)
    pd.testing.assert_frame_equal(series_frame(whole.series, sc.duration), series_frame(chunked.series, sc.duration))
    a, b = summarize_one(whole, sc.duration), summarize_one(chunked, sc.duration)
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def test_an_ack_still_on_its_way_to_a_socket_that_reset_is_dropped():
    # Regression (1350a54): a pure ACK still on its way (ack_later) to a socket that then closed was
    # applied to it, and R10's bookkeeping found no data in flight: the run crashed. One connection,
    # exact timers, 10 ms hops (client -> NLB -> server: 20 ms). Pings at 10, 20, 30, 40 s against a
    # 300 s minimum: the third strike (arriving at 40.02) gets GOAWAY + FIN. The second request, sent
    # at 0.08 + 39.95 = 40.03, crosses them: the client ACKs the GOAWAY at 40.04 while the server is
    # in FIN_WAIT (so the ACK is queued for it), the request reaches it first at 40.05, and the server
    # answers it with RST and closes. The client's FIN then reaches the closed server socket, and so
    # does that ACK, delivered for real (not applied to the closed socket): each draws an RST (R23).
    # The client also ACKs the server's FIN (kernel-lifecycle.md R46), which draws a third RST.
    sc = _single({"duration": "60s", "network": {"one_way_delay": "10ms"},
                  "traffic": {"ramp": "0s", "request_gap": {"fixed": "39.95s"}},
                  "client": {"ping_interval": "10s"}, "lb": {"profile": "aws-nlb-tcp"},
                  "upstream": {"grpc": {"min_ping_interval": "300s", "max_ping_strikes": 2,
                                        "permit_without_calls": True}}})
    rec = run_one(sc, 1, trace_conn=0)  # crashed here before the fix
    sent = [(round(t, 6), who, kind) for t, who, kind, what in rec.trace if what == "sent"]
    # the race, as described above
    assert sent[-11:] == [(40.02, "server", "ACK"), (40.02, "server", "DATA"), (40.02, "server", "FIN"),
                          (40.03, "client", "DATA"), (40.04, "client", "ACK"), (40.04, "client", "FIN"),
                          (40.04, "client", "ACK"), (40.05, "server", "RST"), (40.06, "server", "RST"),
                          (40.06, "server", "RST"), (40.06, "server", "RST")]
    c = rec.columns
    i = c["conn_id"].index(0)
    assert (c["client_outcome"][i], c["server_outcome"][i]) == ("goaway", "goaway")
    assert (c["requests"][i], c["goaway_failures"][i], c["goaways"][i]) == (2, 1, 1)
    # the client reconnected and its replacement lived to the end
    assert c["conn_id"] == [0, 1] and c["client_outcome"][1] == "ok"


def test_split_fleet_gives_the_same_records_as_one_process():
    from sim.execution.runner import run_split

    sc = load_config(NLB, ["connections=40", "duration=1h", "replications=1",
                           "envoy.listener.keepalive.idle=340"]).scenario
    whole = run_one(sc, 5)
    split = run_split(sc, 5, workers=2)
    import pandas as pd

    pd.testing.assert_frame_equal(pd.DataFrame(whole.columns), pd.DataFrame(split.columns))
    assert whole.counters == split.counters
    assert sorted(whole.flow_intervals) == sorted(split.flow_intervals)
    a, b = summarize_one(whole, sc.duration), summarize_one(split, sc.duration)
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)

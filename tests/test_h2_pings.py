"""HTTP/2 PINGs in the keepalive cost (issue 16 point 3): each PING and PING ACK is a 17-byte frame
(9-byte header + 8-byte payload) plus the TCP/IP headers in the byte figures, and a keepalive
packet in ``keepalive_pps``, like a TCP keepalive probe and its ACK."""

from __future__ import annotations

import math

import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.facts.names import H2_CONTROL_FRAME_BYTES, SEGMENT_HEADER_BYTES
from sim.metrics.summary import summarize_one
from sim.spec import Shortcuts
from tests.test_shortcuts import assert_same_run

HOP_S = 0.001


def _grpc(request_bytes: int, ping_interval: float = 10.0, duration: float = 95.0) -> dict:
    """One client connection straight to the server through an NLB: one request at the open, then
    only the client's PINGs (every ``ping_interval``); no TCP keepalive anywhere."""
    return {"duration": duration, "connections": 1, "kernel": {"hz": 1000, "timers": "exact"},
            "network": {"one_way_delay": HOP_S}, "lb": {"profile": "aws-nlb-tcp"},
            "client": {"keepalive": "off", "ping_interval": ping_interval},
            "upstream": {"keepalive": "off"},
            "traffic": {"ramp": 0, "request_gap": {"fixed": 10000}, "service_time": {"fixed": 0},
                        "request_bytes": request_bytes, "response_bytes": 0}}


def _run(raw: dict):
    sc = Scenario.model_validate(raw)
    rec = run_one(sc, 1)
    return rec, summarize_one(rec, sc.duration)


def _bytes(rec) -> int:
    return sum(sum(d["bytes_per_bucket"]) for d in rec.series["devices"])


def test_a_ping_is_a_17_byte_frame_not_a_request():
    """The request's size shows once (the one request), not once per PING and PING ACK."""
    big, _ = _run(_grpc(1000))
    small, _ = _run(_grpc(0))
    assert _bytes(big) - _bytes(small) == 1000


def test_ping_bytes_are_frame_plus_headers():
    """Nine PINGs (10 s .. 90 s) with their ACKs, against the same run without PINGs."""
    pinged, _ = _run(_grpc(0))
    quiet, _ = _run(_grpc(0, ping_interval=0))
    assert H2_CONTROL_FRAME_BYTES == 17
    extra = _bytes(pinged) - _bytes(quiet)
    # each PING and PING ACK: its frame and headers; each is ACKed by a pure TCP ACK (headers only)
    frames = 2 * 9
    assert extra == frames * (SEGMENT_HEADER_BYTES + H2_CONTROL_FRAME_BYTES) + frames * SEGMENT_HEADER_BYTES


def test_pings_count_in_keepalive_pps():
    _, s = _run(_grpc(0))
    assert s["keepalive_packets"] == 2 * 9  # nine PINGs and their PING ACKs
    assert s["keepalive_pps"] == pytest.approx(18 / 95.0)
    _, quiet = _run(_grpc(0, ping_interval=0))
    assert quiet["keepalive_packets"] == 0


def test_keepalive_bytes_count_a_ping_with_its_frame():
    """keepalive_bytes_per_s: 52 bytes of headers per keepalive packet, and 17 more per PING frame."""
    _, s = _run(_grpc(0))
    assert s["keepalive_bytes_per_s"] == pytest.approx(18 * (SEGMENT_HEADER_BYTES + H2_CONTROL_FRAME_BYTES) / 95.0)


def _envoy(upstream_h2_ka: dict | None = None, listener_h2_ka: dict | None = None, faults: list | None = None,
           duration: float = 1000.0) -> dict:
    """One slot: one request at the open, then nothing; Envoy's pool connection to the server
    crosses a 350 s NLB (pass-through, refreshed by any packet); no TCP keepalive anywhere."""
    ups = {"keepalive": "off", "idle_timeout": 0, "protocol": "http2"}
    if upstream_h2_ka is not None:
        ups["http2_keepalive"] = upstream_h2_ka
    lst = {"route_timeout": 0, "stream_idle_timeout": 0, "idle_timeout": 0}
    if listener_h2_ka is not None:
        lst["http2_keepalive"] = listener_h2_ka
    return {"duration": duration, "connections": 1, "kernel": {"hz": 1000, "timers": "exact"},
            "network": {"one_way_delay": HOP_S}, "client": {"keepalive": "off"},
            "lb": {"profile": "aws-nlb-tcp"},
            "envoy": {"concurrency": 1, "listener": lst, "upstream": ups},
            "upstream": {"keepalive": "off", "lb": {"profile": "aws-nlb-tcp"}},
            "faults": faults or [],
            "traffic": {"ramp": 0, "request_gap": {"fixed": 10000}, "service_time": {"fixed": 0}}}


def _leg(rec, leg: str) -> dict:
    c = rec.columns
    (i,) = [i for i in range(len(c["conn_id"])) if c["leg"][i] == leg]
    return {k: v[i] for k, v in c.items()}


def test_upstream_http2_keepalive_keeps_an_idle_pool_connection_through_a_350s_nlb():
    rec, s = _run(_envoy())
    assert _leg(rec, "upstream")["silent_drop"]  # idle for 1000 s: the upstream NLB forgot it
    rec, s = _run(_envoy({"interval": "300s", "timeout": "5s"}))
    up = _leg(rec, "upstream")
    assert not up["silent_drop"] and up["outcome"] == "ok"
    assert _leg(rec, "downstream")["silent_drop"]  # the listener's leg has no PINGs
    upstream_nlb = s["devices"][1]
    assert upstream_nlb["leg"] == "upstream" and upstream_nlb["keepalive_packets"] == 2 * 3  # 300, 600, 900 s


def test_upstream_http2_keepalive_closes_a_dead_connection_after_the_timeout():
    """Every upstream packet is dropped from 100 s: the PING at 300 s gets no ACK, so Envoy closes the
    connection 5 s later (onKeepaliveResponseTimeout)."""
    fault = [{"at": "100s", "leg": "upstream", "action": "drop"}]
    rec, _ = _run(_envoy({"interval": "300s", "timeout": "5s"}, faults=fault))
    up = _leg(rec, "upstream")
    established = up["opened_at_s"] + 4 * HOP_S  # SYN and SYN-ACK, two hops each (the NLB between)
    assert up["client_closed_at_s"] == pytest.approx(established + 305.0)
    rec, _ = _run(_envoy(faults=fault))
    assert math.isnan(_leg(rec, "upstream")["client_closed_at_s"])  # without PINGs it is never noticed


def test_listener_http2_keepalive_pings_the_client_through_the_nlb():
    rec, s = _run(_envoy(listener_h2_ka={"interval": "300s", "timeout": "5s"}))
    down = _leg(rec, "downstream")
    assert not down["silent_drop"] and down["outcome"] == "ok"
    assert s["devices"][0]["keepalive_packets"] == 2 * 3


def test_the_reference_engine_gives_the_same_records_with_http2_keepalive():
    raw = _envoy({"interval": "60s", "timeout": "5s"}, {"interval": "90s", "timeout": "2s"},
                 faults=[{"at": "200s", "for": "100s", "leg": "upstream", "action": "drop"}], duration=600.0)
    raw["connections"] = 4
    raw["traffic"]["request_gap"] = {"exponential": 120}
    raw["seed"] = 5
    assert_same_run(raw, Shortcuts.none())

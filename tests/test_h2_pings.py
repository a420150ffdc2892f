"""HTTP/2 PINGs in the keepalive cost (issue 16 point 3): each PING and PING ACK is a 17-byte frame
(9-byte header + 8-byte payload) plus the TCP/IP headers in the byte figures, and a keepalive
packet in ``keepalive_pps``, like a TCP keepalive probe and its ACK."""

from __future__ import annotations

import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.facts.names import H2_CONTROL_FRAME_BYTES, SEGMENT_HEADER_BYTES
from sim.metrics.summary import summarize_one

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

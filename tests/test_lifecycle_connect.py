"""Connect outcomes through the whole model: the client's own connect, Envoy's upstream connect and
its connect_timeout (issue 15 point 1; kernel-lifecycle.md R41–R45)."""

from __future__ import annotations

import math

import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.metrics.summary import summarize_one

#: faults (issue 15 point 3) that make the losses: every SYN the client sends, every SYN Envoy sends
CLIENT_SYNS = {"leg": "downstream", "direction": "to_server", "packets": "syn"}
ENVOY_SYNS = {"leg": "upstream", "direction": "to_server", "packets": "syn"}


def _raw(**over) -> dict:
    raw = {"duration": 800, "connections": 1, "kernel": {"hz": 250, "timers": "exact"},
           "network": {"one_way_delay": 0.001},
           "traffic": {"ramp": 0, "request_gap": {"fixed": 600}, "service_time": {"fixed": 0}}}
    raw.update(over)
    return raw


def _run(raw: dict) -> tuple[dict, dict]:
    sc = Scenario.model_validate(raw)
    rec = run_one(sc, 1)
    return summarize_one(rec, sc.duration), rec.columns


def _rows(c: dict, leg: str) -> list[dict]:
    return [{k: v[i] for k, v in c.items()} for i in range(len(c["conn_id"])) if c["leg"][i] == leg]


def test_every_client_syn_lost_is_a_connect_timeout_and_the_slot_waits_a_gap():
    """R41–R43 worked example in the model: 11 SYNs, ETIMEDOUT at 131 s; the waiting request fails
    with reason connect_timeout; the next try is one gap (600 s) later and still pending at 800 s."""
    s, c = _run(_raw(faults=[CLIENT_SYNS]))
    first, second = _rows(c, "downstream")
    assert first["connect_outcome"] == "connect_timeout" and first["outcome"] == "connect_timeout"
    assert first["connect_s"] == pytest.approx(131.0) and first["syns_sent"] == 11
    assert first["connect_timeouts"] == 1 and first["failed_requests"] == 1 and first["requests"] == 1
    assert second["opened_at_s"] == pytest.approx(131.0 + 600.0)
    assert second["connect_outcome"] == "pending" and math.isnan(second["connect_s"])
    assert s["connect_failures"] == 1
    assert s["connect_outcomes"] == {"connect_timeout": 1, "pending": 1}
    assert s["failure_reasons"]["connect_timeout"] == 1


def test_rst_to_the_syn_is_connect_refused():
    """R44: refused at once (the RST is back one round trip after the SYN), one SYN, the request fails
    with reason connect_refused."""
    s, c = _run(_raw(faults=[{**CLIENT_SYNS, "for": 1, "action": "rst"}]))
    first, second = _rows(c, "downstream")
    assert first["connect_outcome"] == "connect_refused" and first["connect_s"] == pytest.approx(0.002)
    assert first["syns_sent"] == 1 and first["connect_refusals"] == 1
    assert second["connect_outcome"] == "ok" and second["opened_at_s"] == pytest.approx(600.002)  # a gap later
    assert s["failure_reasons"]["connect_refused"] == 1 and s["connect_failures"] == 1


def test_a_lost_synack_is_recovered_by_the_syn_retransmission():
    """The first SYN-ACK is lost: the client's SYN timer (R41) resends at 1 s and connects."""
    s, c = _run(_raw(faults=[{"leg": "downstream", "for": 0.5, "direction": "to_client", "packets": "syn"}]))
    (row,) = _rows(c, "downstream")
    assert row["connect_outcome"] == "ok" and row["syns_sent"] == 2
    assert row["connect_s"] == pytest.approx(1.002)
    assert row["failed_requests"] == 0 and s["connect_failures"] == 0


def test_envoy_connect_timeout_gives_503_connect_timeout():
    """envoy.upstream.connect_timeout (default 10 s) abandons an upstream connect whose SYNs all
    vanish: SYNs at 0, 1, 2, 3, 4, 5, 7 s (R42), 503 with reason connect_timeout at 10 s."""
    s, c = _run(_raw(envoy={}, faults=[ENVOY_SYNS]))
    (down,) = _rows(c, "downstream")
    ups = _rows(c, "upstream")
    assert ups[0]["connect_outcome"] == "connect_timeout"
    assert ups[0]["connect_s"] == pytest.approx(10.0) and ups[0]["syns_sent"] == 7
    assert down["connect_outcome"] == "ok"
    assert down["connect_timeouts"] >= 1 and down["envoy_503s"] == down["failed_requests"]
    assert s["failure_reasons"]["connect_timeout"] == down["connect_timeouts"]


def test_envoy_connect_timeout_is_configurable_and_can_be_off():
    _, c = _run(_raw(envoy={"upstream": {"connect_timeout": "3s"}}, faults=[ENVOY_SYNS]))
    assert _rows(c, "upstream")[0]["connect_s"] == pytest.approx(3.0)
    _, c = _run(_raw(envoy={"upstream": {"connect_timeout": 0, "syncnt": 2}}, faults=[ENVOY_SYNS]))
    up = _rows(c, "upstream")[0]  # the kernel decides: syncnt 2 -> 7 s (R43 time check)
    assert up["connect_outcome"] == "connect_timeout" and up["connect_s"] == pytest.approx(7.0)


def test_client_syncnt_and_sysctls_reach_the_kernel():
    _, c = _run(_raw(client={"syncnt": 1}, faults=[CLIENT_SYNS]))
    assert _rows(c, "downstream")[0]["connect_s"] == pytest.approx(3.0)
    _, c = _run(_raw(kernel={"hz": 250, "timers": "exact", "sysctl": {"net.ipv4.tcp_syn_linear_timeouts": 0}},
                     faults=[CLIENT_SYNS]))
    assert _rows(c, "downstream")[0]["connect_s"] == pytest.approx(127.0)


def test_an_established_connection_costs_no_handshake_event():
    """The handshake timer is only queued on a loss: a clean run has no more events than before
    (3 handshake segments, then the traffic)."""
    sc = Scenario.model_validate(_raw(duration=100, traffic={"ramp": 0, "request_gap": {"fixed": 600}}))
    rec = run_one(sc, 1)
    # SYN, SYN-ACK, ACK, request, its ACK is lazy, response, its ACK lazy
    assert rec.run["events"] == 6
    assert rec.columns["connect_outcome"] == ["ok"]

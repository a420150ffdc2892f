"""Closing (kernel-lifecycle.md R46–R52): FIN retransmission, orphans, FIN_WAIT2, TIME_WAIT, and the
close columns of the records (issue 15 point 2)."""

from __future__ import annotations

import math

import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.model.segment import FIN
from tests.kernel_harness import Harness

FIN_KIND = str(FIN)
RTO0 = 0.204  # R30: SRTT 2 ms + 200 ms, rounded up to a jiffy at HZ=250


def _orphan(**kw) -> Harness:
    """An established socket whose peer is gone; the application closes it at t = 0."""
    h = Harness(peer="dead", **kw)
    h.establish(keepalive=None)
    h.sock.close()
    h.run(1000)
    return h


def test_orphan_fin_into_a_blackhole_dies_by_tcp_orphan_retries_0_meaning_8():
    """R46, R47: a loss probe at PTO = 204 ms, then RTO retransmissions from 408 ms (retrans_stamp),
    doubling; 0 means 8, so the orphan dies at the first expiry at least ((2<<8)-1) x 0.2 = 102.2 s
    after retrans_stamp: 0.408 x 255 = 104.04 s after it. No RST, no error to an application."""
    h = _orphan()
    rto_times = [0.408 + RTO0 * 2 * (2**j - 1) for j in range(8)]
    assert h.times(FIN_KIND) == pytest.approx([0.0, RTO0] + rto_times)
    info = h.sock.closing
    assert info.orphan_died and info.state == "closed"
    assert info.since_s == pytest.approx(0.408 + 0.408 * 255)
    assert info.fins == 10 and info.fin_rtx == 9
    assert h.errors == [] and h.times("rst") == []


def test_orphan_retries_sysctl_3():
    """R47 with tcp_orphan_retries = 3: limit (2<<3)-1 = 15 x 0.2 = 3 s: dies at 0.408 + 6.12 s."""
    h = _orphan(sysctl={"net.ipv4.tcp_orphan_retries": 3})
    assert h.sock.closing.orphan_died
    assert h.sock.closing.since_s == pytest.approx(0.408 + 0.408 * 15)
    assert len(h.times(FIN_KIND)) == 1 + 1 + 4


def test_user_timeout_still_applies_to_an_orphan():
    """R47, R34: TCP_USER_TIMEOUT 5 s replaces the orphan limit, and the RTO is clamped to it."""
    h = Harness(peer="dead")
    h.establish(keepalive=None, user_timeout_ms=5000)
    h.sock.close()
    h.run(1000)
    assert h.times(FIN_KIND) == pytest.approx([0.0, 0.204, 0.408, 0.816, 1.632, 3.264])
    assert h.sock.closing.orphan_died and h.sock.closing.since_s == pytest.approx(0.408 + 5.0)


def _raw(duration: float, **over) -> dict:
    raw = {"duration": duration, "connections": 1, "kernel": {"hz": 250, "timers": "exact"},
           "network": {"one_way_delay": 0.001},
           "traffic": {"ramp": 0, "request_gap": {"fixed": 600}, "service_time": {"fixed": 0}},
           "upstream": {"idle_timeout": 100}}
    raw.update(over)
    return raw


def _rows(raw: dict) -> list[dict]:
    c = run_one(Scenario.model_validate(raw), 1).columns
    return [{k: v[i] for k, v in c.items()} for i in range(len(c["conn_id"]))]


def test_server_idle_close_time_wait_60s_at_the_side_that_closed_first():
    """R49: the server closes first (its keep-alive timeout, at 100 s after the response); the client
    answers with its FIN at once; the server spends 60 s in TIME_WAIT, the client goes through
    LAST_ACK to closed. Two FINs, no retransmission."""
    # the response leaves at 3 ms, the server's FIN at 100.003 s, the client's FIN arrives at 100.005 s
    row, replacement = _rows(_raw(130))  # the end comes 29.995 s into TIME_WAIT
    assert row["server_close_state"] == "time_wait" and row["client_close_state"] == "closed"
    assert row["time_wait_s"] == pytest.approx(130 - 100.005, abs=1e-9)
    assert row["fins_sent"] == 2 and row["fin_retransmits"] == 0 and not row["orphan_died"]
    assert replacement["client_close_state"] == "established"  # a peer's FIN: replaced at once
    rows = _rows(_raw(1000))
    done = [r for r in rows if r["server_closed_at_s"] < 1000 - 60 - 0.01]
    assert len(done) >= 8
    for row in done:
        assert row["server_close_state"] == "closed" and row["time_wait_s"] == pytest.approx(60.0)
        assert row["fin_wait2_s"] == 0.0 and row["fins_sent"] == 2


def test_still_open_at_the_end_is_established():
    (row,) = _rows(_raw(50))  # the server's keep-alive timeout comes at 100 s
    assert row["client_close_state"] == row["server_close_state"] == "established"
    assert row["fins_sent"] == 0 and row["time_wait_s"] == 0.0


def test_fin_wait2_ends_after_tcp_fin_timeout_when_the_peer_fin_is_lost():
    """R48: the client's FIN never arrives (its ACK of the server's FIN does): the server waits
    tcp_fin_timeout in FIN_WAIT2 and is gone; the client's FIN dies as an orphan (R47)."""
    for fin_timeout, expected in ((None, 60.0), (30, 30.0)):
        raw = _raw(400, faults=[{"leg": "downstream", "direction": "to_server", "packets": "fin"}])
        if fin_timeout:
            raw["kernel"] = {**raw["kernel"], "sysctl": {"net.ipv4.tcp_fin_timeout": fin_timeout}}
        row = _rows(raw)[0]
        assert row["server_close_state"] == "closed" and row["fin_wait2_s"] == pytest.approx(expected)
        assert row["client_close_state"] == "closed" and row["orphan_died"]
        assert row["fin_retransmits"] == 9 and row["time_wait_s"] == 0.0


def test_a_fin_for_a_socket_whose_fin_wait2_ran_out_gets_an_rst():
    """R48, R50: the client's FIN comes only after the server's FIN_WAIT2 ran out (all but the FINs
    after 200 s are dropped): the server's host answers it with an RST, and the client is closed."""
    raw = _raw(400, kernel={"hz": 250, "timers": "exact", "sysctl": {"net.ipv4.tcp_fin_timeout": 20,
                                                                       "net.ipv4.tcp_orphan_retries": 10}},
               faults=[{"leg": "downstream", "for": 150, "direction": "to_server", "packets": "fin"}])
    row = _rows(raw)[0]
    assert row["fin_wait2_s"] == pytest.approx(20.0) and row["server_close_state"] == "closed"
    assert row["client_close_state"] == "closed" and not row["orphan_died"]


def test_requests_per_connection_closes_after_n_answers_and_the_client_is_in_time_wait():
    """traffic.requests_per_connection = 2, a request every 10 s: each connection carries two, the
    client closes it first (so the client side gets TIME_WAIT, R49), and the next request opens a new
    connection one gap later."""
    raw = _raw(100, traffic={"ramp": 0, "request_gap": {"fixed": 10}, "requests_per_connection": 2},
               upstream={})
    rows = _rows(raw)
    assert [r["requests"] for r in rows] == [2, 2, 2, 2, 2][: len(rows)] and len(rows) == 5
    assert rows[1]["opened_at_s"] == pytest.approx(rows[0]["client_closed_at_s"] + 10)
    assert rows[0]["client_close_state"] == "closed" and rows[0]["server_close_state"] == "closed"
    assert rows[0]["time_wait_s"] == pytest.approx(60.0)
    assert rows[-1]["client_close_state"] == "time_wait"
    assert all(r["failed_requests"] == 0 and r["fins_sent"] == 2 for r in rows)


def test_envoy_max_requests_per_connection_on_the_upstream_leg():
    raw = _raw(100, traffic={"ramp": 0, "request_gap": {"fixed": 10}}, upstream={},
               envoy={"upstream": {"max_requests_per_connection": 3}})
    c = run_one(Scenario.model_validate(raw), 1).columns
    ups = [r for r, leg in zip(c["requests"], c["leg"], strict=True) if leg == "upstream"]
    down = [r for r, leg in zip(c["requests"], c["leg"], strict=True) if leg == "downstream"]
    assert down == [10] and ups == [3, 3, 3, 1]
    assert sum(c["failed_requests"]) == 0


def test_a_server_that_never_closes_stays_in_close_wait_until_its_keepalive_finds_the_peer_gone():
    """R51, R48, R50: the client closes after one answer (its FIN reaches the server at 5 ms); a leaky
    server (upstream.close_on_fin: false) never closes, so its socket stays in CLOSE_WAIT while the
    client's goes through FIN_WAIT2 (60 s, tcp_fin_timeout) and is gone. Without keepalive the
    server is still in CLOSE_WAIT at the end; with TCP_KEEPIDLE 120 s its first probe leaves 120 s
    after the FIN (the last segment it received, R11), at 120.005 s, and the client's host answers it
    with an RST at 120.007 s (no socket, R50)."""
    def leaky(keepalive) -> dict:
        raw = _raw(400, traffic={"ramp": 0, "request_gap": {"fixed": 600}, "requests_per_connection": 1},
                   upstream={"close_on_fin": False, "keepalive": keepalive})
        (row,) = _rows(raw)
        assert row["client_close_state"] == "closed" and row["fin_wait2_s"] == pytest.approx(60.0)
        assert row["fins_sent"] == 1 and row["client_outcome"] == "ok"
        return row

    quiet = leaky("off")
    assert quiet["server_close_state"] == "close_wait" and math.isnan(quiet["server_closed_at_s"])
    probed = leaky({"idle": 120, "interval": 10, "count": 3})
    assert probed["server_close_state"] == "closed" and probed["server_outcome"] == "reset_by_peer"
    assert probed["server_closed_at_s"] == pytest.approx(120.007, abs=1e-9)
    # the default server closes at once: LAST_ACK, then closed, with two FINs
    (closes,) = _rows(_raw(400, traffic={"ramp": 0, "request_gap": {"fixed": 600}, "requests_per_connection": 1},
                           upstream={}))
    assert closes["server_close_state"] == "closed" and closes["fins_sent"] == 2

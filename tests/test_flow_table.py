"""Flow tables that fill up (issue 16 point 1): ``lb.max_flows`` is enforced, ``lb.on_full`` says
whether a SYN that finds the table full is dropped (the client's SYN retries run, R41–R43) or
answered with an RST (ECONNREFUSED, R44); the per-device counters connects_rejected, flows_limit,
seconds_full and exhausted_at_s. Closed-form cases, on both engines."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.metrics.summary import summarize_one
from sim.spec import Shortcuts
from tests.shortcut_scenarios import scenario
from tests.test_shortcuts import assert_same_run

HOP_S = 0.001


def _raw(n: int, m: int, on_full: str | None = None, duration: float = 200.0, **lb) -> dict:
    lb_cfg = {"profile": "linux-conntrack", "max_flows": m, **lb}
    if on_full is not None:
        lb_cfg["on_full"] = on_full
    return {"duration": duration, "connections": n, "kernel": {"hz": 250, "timers": "exact"},
            "network": {"one_way_delay": HOP_S}, "lb": lb_cfg,
            "traffic": {"ramp": 0, "request_gap": {"fixed": 1000}, "service_time": {"fixed": 0}}}


def _run(raw: dict, shortcuts: Shortcuts | None = None, chunk_slots: int | None = None):
    sc = Scenario.model_validate(raw)
    kw = {} if chunk_slots is None else {"chunk_slots": chunk_slots}
    rec = run_one(sc, 1, shortcuts=shortcuts, **kw)
    return summarize_one(rec, sc.duration), rec.columns


def _rows(c: dict) -> list[dict]:
    return [{k: v[i] for k, v in c.items()} for i in range(len(c["conn_id"])) if c["leg"][i] == "downstream"]


def assert_n_minus_m_connects_time_out(s: dict, columns: dict, n: int, m: int) -> dict:
    """N connections through room for M (M < N, nothing closes): exactly N - M connects end
    connect_timeout, each 131 s after the first SYN with 11 SYNs sent (R42, R43 defaults), M succeed,
    and the first device refused 11 SYNs per failure. Returns that device's figures."""
    rows = _rows(columns)
    failed = [r for r in rows if r["connect_outcome"] == "connect_timeout"]
    assert len(failed) == n - m and s["connect_failures"] == n - m
    assert all(r["connect_s"] == pytest.approx(131.0) and r["syns_sent"] == 11 for r in failed)
    assert sum(r["connect_outcome"] == "ok" for r in rows) == m
    dev = s["devices"][0]
    assert dev["connects_rejected"] == (n - m) * 11
    return dev


def test_a_full_table_drops_new_syns_and_they_time_out_after_the_syn_retries():
    """5 connections open at once through a table of 2, nothing closes: 3 connects fail with
    ETIMEDOUT at 131 s (11 SYNs each, the defaults); the table is full from the 2nd SYN (one hop
    after t=0) to the end of the run."""
    s, c = _run(_raw(5, 2, "drop"))
    dev = assert_n_minus_m_connects_time_out(s, c, 5, 2)
    assert dev["flows_limit"] == 2 and dev["flows_peak"] == 2
    assert dev["exhausted_at_s"] == pytest.approx(HOP_S)
    assert dev["seconds_full"] == pytest.approx(200.0 - HOP_S)
    assert s["failure_reasons"]["connect_timeout"] == 3


def test_linux_conntrack_drops_by_default_and_fewer_syn_retries_fail_sooner():
    """The profile's on_full is drop (nf_conntrack: table full, dropping packet); with
    tcp_syn_retries=1 the R43 time check gives up at 3 s after SYNs at 0, 1, 2 s."""
    raw = _raw(3, 1)
    raw["client"] = {"kernel": {"sysctl": {"net.ipv4.tcp_syn_retries": 1}}}
    s, c = _run(raw)
    failed = [r for r in _rows(c) if r["connect_outcome"] == "connect_timeout"]
    assert len(failed) == 2
    assert all(r["connect_s"] == pytest.approx(3.0) and r["syns_sent"] == 3 for r in failed)
    assert s["devices"][0]["connects_rejected"] == 2 * 3


def test_on_full_rst_refuses_at_once():
    """on_full: rst answers the SYN with an RST from the device: ECONNREFUSED one round trip to the
    device after the SYN (R44), one SYN each, the RSTs counted as the LB's."""
    s, c = _run(_raw(5, 2, "rst"))
    refused = [r for r in _rows(c) if r["connect_outcome"] == "connect_refused"]
    assert len(refused) == 3 and s["connect_failures"] == 3
    assert all(r["connect_s"] == pytest.approx(2 * HOP_S) and r["syns_sent"] == 1 for r in refused)
    dev = s["devices"][0]
    assert dev["connects_rejected"] == 3 and dev["lb_rsts"] == 3
    assert s["failure_reasons"]["connect_refused"] == 3


def test_an_idle_expiry_frees_a_slot_for_a_retried_syn():
    """Table of 1, idle timeout 5 s: slot 0's flow expires about 5 s after its last packet, so slot
    1's SYNs at 0..5 s are dropped and the one sent at 7 s (R42) gets in."""
    s, c = _run(_raw(2, 1, "drop", duration=10.0, idle_timeout=5))
    late = _rows(c)[1]
    assert late["connect_outcome"] == "ok" and late["syns_sent"] == 7
    assert late["connect_s"] == pytest.approx(7.0 + 4 * HOP_S)  # two hops each way
    dev = s["devices"][0]
    assert dev["connects_rejected"] == 6 and dev["exhausted_at_s"] == pytest.approx(HOP_S)
    # slot 0's last packet (the ACK of its response) passes at 0.009 s, so its entry expires at
    # 5.009 s; slot 1's entry is made at 7.001 s and outlives the 10 s run: full 5.008 + 2.999 s
    assert dev["seconds_full"] == pytest.approx(8.007)


def test_no_limit_no_counters():
    s, _ = _run({**_raw(3, 1), "lb": "linux-conntrack"})
    dev = s["devices"][0]
    assert dev["flows_limit"] is None and dev["connects_rejected"] == 0
    assert dev["seconds_full"] == 0.0 and dev["exhausted_at_s"] is None


@pytest.mark.parametrize("on_full", ["drop", "rst"])
def test_the_reference_engine_and_chunking_give_the_same_numbers(on_full):
    """The table is shared by every slot: the fleet is not chunked, and the reference engine agrees."""
    raw = _raw(5, 2, on_full)
    fast_s, fast_c = _run(raw, chunk_slots=2)
    ref_s, ref_c = _run(raw, Shortcuts.none())
    assert fast_c == ref_c or all(
        a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
        for k in fast_c for a, b in zip(fast_c[k], ref_c[k], strict=True))
    assert fast_s["devices"] == ref_s["devices"]
    assert fast_s["connect_failures"] == ref_s["connect_failures"] == 3


def test_a_limited_fleet_is_never_split_into_pieces(monkeypatch):
    """run_replication splits a fleet into independent pieces of PIECE_SLOTS; slots that share a
    flow table are not independent, so the fleet runs whole and the table still fills at 2."""
    from sim.execution import runner
    from sim.execution.simulate import slots_independent

    monkeypatch.setattr(runner, "PIECE_SLOTS", 2)
    sc = Scenario.model_validate(_raw(5, 2, "drop"))
    assert not slots_independent(sc)
    assert slots_independent(Scenario.model_validate({**_raw(5, 2), "lb": "linux-conntrack"}))
    rec = runner.run_replication(sc, 1)
    s = summarize_one(rec, sc.duration)
    assert s["connect_failures"] == 3 and s["devices"][0]["connects_rejected"] == 33


def test_the_trace_of_a_rejected_connection_is_that_of_the_whole_fleet():
    """A sweep's drop trace re-runs one slot; with a flow limit the whole fleet runs again, so the
    traced connection meets the full table as it did."""
    from sim.execution.tasks import trace_one

    sc = Scenario.model_validate(_raw(5, 2, "drop"))
    _, c = _run(_raw(5, 2, "drop"))
    rejected = next(r["conn_id"] for r in _rows(c) if r["connect_outcome"] == "connect_timeout")
    trace = trace_one(sc, 1, rejected)
    assert any("dropped" in str(e) for e in trace)


def test_the_shipped_conntrack_full_config_gives_its_closed_form():
    """configs/conntrack-full.yaml states its expectation in its comments: 600 connect timeouts,
    6,600 SYNs refused, full from 0.001 s to the end."""
    from pathlib import Path

    from sim.config.load import load_config

    sc = load_config(Path(__file__).resolve().parent.parent / "configs" / "conntrack-full.yaml").scenario
    s = summarize_one(run_one(sc, 1), sc.duration)
    assert s["connect_failures"] == 600 and s["connect_outcomes"] == {"ok": 1000, "connect_timeout": 600}
    dev = s["devices"][0]
    assert dev["connects_rejected"] == 6600 and dev["flows_peak"] == 1000 and dev["flows_limit"] == 1000
    assert dev["exhausted_at_s"] == pytest.approx(0.001) and dev["seconds_full"] == pytest.approx(1799.999)


def test_profiles_carry_their_limits_and_what_a_full_table_does():
    """Every profile says what a full table does (a required field); the NAT gateways' limits are
    port budgets (issue 16 point 2), not flow tables; conntrack drops."""
    from sim.config.profiles import all_profiles

    profiles = all_profiles()
    assert all(p.on_full in ("drop", "rst") for p in profiles.values())
    assert profiles["aws-nat-gateway"].max_flows is None and profiles["azure-nat-gateway"].max_flows is None
    assert profiles["linux-conntrack"].on_full == "drop" and profiles["kube-proxy-iptables"].max_flows == 131072


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(raw=scenario(), limit=st.integers(1, 3), on_full=st.sampled_from(["drop", "rst"]))
def test_random_scenarios_with_a_small_table_agree_on_both_engines(raw, limit, on_full):
    """tests/test_shortcuts.py's random scenarios, with a table of 1 to 3 entries on the first
    middlebox (1 to 4 slots, so it often fills): the reference engine gives the same records."""
    lb = raw.get("lb")
    chain = lb if isinstance(lb, list) else [lb] if lb else []
    if not chain:
        chain = raw["lb"] = [{"profile": "linux-conntrack"}]
    chain[0].update(max_flows=limit, on_full=on_full)
    assert_same_run(raw, Shortcuts.none())


def test_the_cost_estimate_counts_a_limited_fleet_held_whole():
    """A fleet behind a limited table is not chunked, so the memory estimate holds every slot."""
    from sim.execution.cost import point_cost

    free = point_cost(Scenario.model_validate({**_raw(50_000, 2), "lb": "linux-conntrack"}))
    limited = point_cost(Scenario.model_validate(_raw(50_000, 2)))
    assert limited.memory > free.memory + 49_000 * 4_000

"""Port budgets (issue 16 point 2): ``lb.ports: {limit, per: destination|client_instance, reuse_s}``
and ``client.instances``. A port is held from a flow's first SYN until the device forgets the flow:
at its idle expiry, or ``reuse_s`` after its close (FIN both ways, or an RST). A SYN that finds no
free port is dropped; the client's SYN retries (kernel-lifecycle.md R41–R43) and connect timeout
play out. Closed-form cases, on both engines; the per-device ports_* figures."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config.schema import Scenario
from sim.config.validate import Source, validate_scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.metrics.summary import summarize_one
from sim.spec import Shortcuts
from tests.shortcut_scenarios import scenario
from tests.test_flow_table import assert_n_minus_m_connects_time_out
from tests.test_shortcuts import assert_same_run

HOP_S = 0.001


def _raw(n: int, ports: dict | None, duration: float = 200.0, profile: str = "aws-nat-gateway",
         instances: int | None = None, **lb) -> dict:
    lb_cfg: dict = {"profile": profile, **lb}
    if ports is not None:
        lb_cfg["ports"] = ports
    raw: dict = {"duration": duration, "connections": n, "kernel": {"hz": 250, "timers": "exact"},
                 "network": {"one_way_delay": HOP_S}, "lb": lb_cfg,
                 "traffic": {"ramp": 0, "request_gap": {"fixed": 1000}, "service_time": {"fixed": 0}}}
    if instances is not None:
        raw["client"] = {"instances": instances}
    return raw


def _run(raw: dict, shortcuts: Shortcuts | None = None, chunk_slots: int | None = None):
    sc = validate_scenario(raw, Source("<test>", {}))
    kw = {} if chunk_slots is None else {"chunk_slots": chunk_slots}
    rec = run_one(sc, 1, shortcuts=shortcuts, **kw)
    return summarize_one(rec, sc.duration), rec.columns


def _rows(c: dict) -> list[dict]:
    return [{k: v[i] for k, v in c.items()} for i in range(len(c["conn_id"])) if c["leg"][i] == "downstream"]


def _spec(raw: dict):
    from sim.config.resolve import world_spec

    return world_spec(validate_scenario(raw, Source("<test>", {})))


@pytest.mark.parametrize("engine", ["fast", "reference"])
def test_n_connections_through_m_ports_give_n_minus_m_connect_timeouts(engine):
    """The issue's closed form: 5 connections to one destination through 2 ports, nothing closes:
    exactly 3 connects fail, each connect_timeout at 131 s after 11 SYNs (R42, R43 defaults); the
    budget is full from the 2nd SYN (one hop after t=0) to the end of the run. Both engines."""
    s, c = _run(_raw(5, {"limit": 2}), Shortcuts.none() if engine == "reference" else None)
    dev = assert_n_minus_m_connects_time_out(s, c, 5, 2)
    assert dev["ports_limit"] == 2 and dev["ports_peak"] == 2 and dev["headroom_pct"] == 0.0
    assert dev["ports_mean"] == pytest.approx(2 * (200.0 - HOP_S) / 200.0)
    assert dev["flows_limit"] is None and dev["flows_peak"] == 2
    assert dev["exhausted_at_s"] == pytest.approx(HOP_S)
    assert dev["seconds_full"] == pytest.approx(200.0 - HOP_S)
    assert s["failure_reasons"]["connect_timeout"] == 3


def test_the_two_engines_and_chunking_give_the_same_records():
    """A shared budget makes the fleet one piece: chunked or not, fast or reference, the same."""
    raw = _raw(5, {"limit": 2})
    fast_s, fast_c = _run(raw, chunk_slots=2)
    ref_s, ref_c = _run(raw, Shortcuts.none())
    assert all(a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
               for k in fast_c for a, b in zip(fast_c[k], ref_c[k], strict=True))
    assert fast_s["devices"] == ref_s["devices"]
    assert fast_s["connect_failures"] == ref_s["connect_failures"] == 3


def test_a_budget_per_client_instance_is_shared_by_the_slots_of_that_instance():
    """6 slots over 2 instances (slot i on instance i % 2), 2 ports per instance: slots 0-3 get a
    port, slots 4 and 5 (the third of each instance) time out. As one shared budget of 2, 4 fail."""
    s, c = _run(_raw(6, {"limit": 2, "per": "client_instance"}, instances=2))
    failed = sorted(r["conn_id"] // 1_000_000 for r in _rows(c) if r["connect_outcome"] == "connect_timeout")
    assert failed == [4, 5]
    dev = s["devices"][0]
    # peak and limit are those of one budget (the fullest instance's); mean is per budget
    assert dev["ports_limit"] == 2 and dev["ports_peak"] == 2
    assert dev["ports_mean"] == pytest.approx(2 * (200.0 - HOP_S) / 200.0)
    assert dev["connects_rejected"] == 2 * 11 and dev["exhausted_at_s"] == pytest.approx(HOP_S)
    shared, _ = _run(_raw(6, {"limit": 2, "per": "destination"}, instances=2))
    assert shared["connect_failures"] == 4


def test_one_instance_per_slot_by_default():
    """client.instances defaults to one machine per slot: a budget of 1 per instance never bites
    a fleet whose slots hold one connection each (and such a fleet may be chunked)."""
    from sim.execution.simulate import slots_independent

    raw = _raw(4, {"limit": 1, "per": "client_instance"})
    s, _ = _run(raw, chunk_slots=2)
    assert s["connect_failures"] == 0 and s["devices"][0]["ports_peak"] == 1
    assert s["devices"][0]["exhausted_at_s"] == pytest.approx(HOP_S)  # each budget of 1 is full
    assert slots_independent(Scenario.model_validate(raw))
    assert not slots_independent(Scenario.model_validate(_raw(4, {"limit": 1, "per": "client_instance"},
                                                                instances=2)))
    assert not slots_independent(Scenario.model_validate(_raw(4, {"limit": 100})))


def _closing(reuse_s: float | None) -> dict:
    """Slot 0 takes the only port at t=0, gets its answer and closes (requests_per_connection 1):
    FIN both ways, the server's FIN passes the device at 0.009 s. Slot 1's SYNs meet no port."""
    ports: dict = {"limit": 1}
    if reuse_s is not None:
        ports["reuse_s"] = reuse_s
    raw = _raw(2, ports, duration=60.0)
    raw["traffic"]["requests_per_connection"] = 1
    return raw


@pytest.mark.parametrize(("reuse_s", "syns", "at_s"), [(None, 2, 1.0), (10, 8, 11.0), (12, 9, 19.0)])
def test_a_port_freed_by_close_is_reusable_only_reuse_s_later(reuse_s, syns, at_s):
    """The port of a closed flow is held for reuse_s after the close (TIME_WAIT, reuse timers):
    0 s (AWS publishes none): slot 1's SYN at 1 s gets it; 10 s: free at 10.009 s, the SYN at 11 s;
    12 s: free at 12.009 s, the SYN at 19 s (R42: SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19 s)."""
    s, c = _run(_closing(reuse_s))
    late = next(r for r in _rows(c) if r["conn_id"] // 1_000_000 == 1)
    assert late["connect_outcome"] == "ok" and late["syns_sent"] == syns
    assert late["connect_s"] == pytest.approx(at_s + 4 * HOP_S)
    assert s["devices"][0]["connects_rejected"] == syns - 1
    ref, _ = _run(_closing(reuse_s), Shortcuts.none())
    assert ref["devices"] == s["devices"]


def test_an_idle_expiry_frees_the_port_at_once():
    """Idle timeout 5 s, one port: slot 0's flow expires at 5.009 s and frees its port then (reuse_s
    applies to closed flows only), so slot 1's SYN at 7 s gets it."""
    s, c = _run(_raw(2, {"limit": 1, "reuse_s": 100}, duration=10.0, idle_timeout=5))
    late = _rows(c)[1]
    assert late["connect_outcome"] == "ok" and late["syns_sent"] == 7
    dev = s["devices"][0]
    assert dev["connects_rejected"] == 6 and dev["ports_peak"] == 1
    # full from 0.001 to 5.009 s and from 7.001 s to the end
    assert dev["seconds_full"] == pytest.approx(5.008 + 2.999)


def test_no_budget_no_port_figures():
    s, _ = _run(_raw(3, None, profile="linux-conntrack"))
    dev = s["devices"][0]
    assert dev["ports_limit"] is None and dev["exhausted_at_s"] is None
    assert math.isnan(dev["ports_peak"]) and dev["headroom_pct"] is None


def test_a_large_budget_never_bites_and_shows_its_headroom():
    s, _ = _run(_raw(4, None))  # aws-nat-gateway: 55,000 per destination
    dev = s["devices"][0]
    assert dev["ports_limit"] == 55_000 and dev["ports_peak"] == 4
    assert dev["headroom_pct"] == pytest.approx((55_000 - 4) / 55_000 * 100)
    assert dev["seconds_full"] == 0.0 and dev["exhausted_at_s"] is None and s["connect_failures"] == 0


# ------------------------------------------------------------------ profiles and config
def _lb(raw: dict):
    return _spec(raw).lb[0]


def test_profile_budgets_and_their_overrides_field_by_field():
    aws = _lb(_raw(2, None))
    assert (aws.ports_limit, aws.ports_per, aws.ports_reuse_s, aws.max_flows) == (55_000, "destination", 0.0, None)
    gcp = _lb(_raw(2, None, profile="gcp-cloud-nat"))
    assert (gcp.ports_limit, gcp.ports_per, gcp.ports_reuse_s) == (64, "client_instance", 120.0)
    assert gcp.idle_timeout_s == 1200.0
    # each field overrides alone; the others stay the profile's
    assert _lb(_raw(2, {"limit": 10}, profile="gcp-cloud-nat")).ports_limit == 10
    one = _lb(_raw(2, {"per": "destination"}, profile="gcp-cloud-nat"))
    assert (one.ports_limit, one.ports_per, one.ports_reuse_s) == (64, "destination", 120.0)
    two = _lb(_raw(2, {"reuse_s": "30s"}, profile="gcp-cloud-nat"))
    assert (two.ports_limit, two.ports_per, two.ports_reuse_s) == (64, "client_instance", 30.0)
    natgw = _lb(_raw(2, None, profile="azure-nat-gateway"))
    assert (natgw.ports_limit, natgw.ports_per, natgw.ports_reuse_s) == (64_512, "destination", 65.0)
    # a profile without a budget gets one from the config alone; reuse_s then defaults to 0
    ct = _lb(_raw(2, {"limit": 7}, profile="linux-conntrack"))
    assert (ct.ports_limit, ct.ports_per, ct.ports_reuse_s) == (7, "destination", 0.0)
    assert _lb(_raw(2, None, profile="linux-conntrack")).ports_limit is None


@pytest.mark.parametrize(("pool", "ports"), [(1, 1024), (50, 1024), (51, 512), (100, 512), (101, 256), (200, 256),
                                             (201, 128), (400, 128), (401, 64), (800, 64), (801, 32), (1000, 32)])
def test_azure_default_outbound_snat_follows_the_allocation_table(pool, ports):
    """Ports per backend instance by pool size (client.instances), the documented table."""
    spec = _lb(_raw(2, None, profile="azure-lb-outbound-snat", instances=pool))
    assert (spec.ports_limit, spec.ports_per) == (ports, "client_instance")


def test_the_pool_size_defaults_to_one_instance_per_slot():
    assert _lb(_raw(60, None, profile="azure-lb-outbound-snat")).ports_limit == 512


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        validate_scenario(raw, Source("<test>", {}))
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_a_figure_that_is_not_published_is_a_required_key():
    """The allocation table ends at 1,000 instances: beyond, the limit must be given."""
    text = _error(_raw(2, None, profile="azure-lb-outbound-snat", instances=1001))
    assert "lb.ports.limit" in text and "required" in text and "1000" in text
    assert _lb(_raw(2, {"limit": 16}, profile="azure-lb-outbound-snat", instances=1001)).ports_limit == 16


@pytest.mark.parametrize(("ports", "instances", "key", "words"), [
    ({"limit": 0}, None, "lb.ports.limit", "too small"),
    ({"limit": 2.5}, None, "lb.ports.limit", "not an integer"),
    ({"per": "host"}, None, "lb.ports.per", "destination"),
    ({"reuse_s": -1}, None, "lb.ports.reuse_s", "reuse_s"),
    ({"limt": 3}, None, "lb.ports.limt", "unknown key"),
    (None, 0, "client.instances", "too small"),
])
def test_bad_port_keys_are_one_line_errors(ports, instances, key, words):
    text = _error(_raw(2, ports, instances=instances))
    assert key in text and words in text


def test_a_budget_on_the_upstream_leg_is_envoys_one_instance():
    """upstream.lb takes the same keys; Envoy is the one client instance of that leg."""
    raw = _raw(3, None)
    raw["envoy"] = {}
    raw["upstream"] = {"lb": {"profile": "azure-lb-outbound-snat", "ports": {"limit": 2}}}
    spec = _spec(raw)
    assert spec.upstream_lb[0].ports_limit == 2
    s, _ = _run(raw)
    up = s["devices"][1]
    assert up["leg"] == "upstream" and up["ports_peak"] == 2 and up["connects_rejected"] > 0


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(raw=scenario(), limit=st.integers(1, 3), per=st.sampled_from(["destination", "client_instance"]),
       reuse=st.sampled_from([0, 1, 30]), instances=st.integers(1, 3))
def test_random_scenarios_with_a_small_budget_agree_on_both_engines(raw, limit, per, reuse, instances):
    """tests/test_shortcuts.py's random scenarios with a port budget of 1 to 3 on the first
    middlebox, over 1 to 3 client instances: the reference engine gives the same records."""
    lb = raw.get("lb")
    chain = lb if isinstance(lb, list) else [lb] if lb else []
    if not chain:
        chain = raw["lb"] = [{"profile": "aws-nat-gateway"}]
    if isinstance(chain[0], str):
        chain[0] = {"profile": chain[0]}
        raw["lb"] = chain
    chain[0]["ports"] = {"limit": limit, "per": per, "reuse_s": reuse}
    raw.setdefault("client", {})["instances"] = instances
    assert_same_run(raw, Shortcuts.none())


def test_the_cost_estimate_counts_a_fleet_sharing_a_budget_held_whole():
    from sim.execution.cost import point_cost

    free = point_cost(Scenario.model_validate(_raw(50_000, None, profile="linux-conntrack")))
    shared = point_cost(Scenario.model_validate(_raw(50_000, {"limit": 100})))
    assert shared.memory > free.memory + 49_000 * 4_000


def test_the_trace_of_a_port_starved_connection_is_that_of_the_whole_fleet():
    from sim.execution.tasks import trace_one

    raw = _raw(5, {"limit": 2})
    _, c = _run(raw)
    starved = next(r["conn_id"] for r in _rows(c) if r["connect_outcome"] == "connect_timeout")
    trace = trace_one(Scenario.model_validate(raw), 1, starved)
    assert any("dropped" in str(e) for e in trace)


def test_the_shipped_azure_snat_exhaustion_config_gives_its_closed_form(capsys):
    """configs/azure-snat-exhaustion.yaml states its expectation in its comments: 801 instances of
    32 ports, 40 connections each: 6,408 connect timeouts, 70,488 SYNs refused, every budget full
    from 0.001 s until the 4-minute idle timeout frees the ports at 240.009 s. Checked with `run`."""
    import json
    from pathlib import Path

    from sim.cli import main

    cfg = Path(__file__).resolve().parent.parent / "configs" / "azure-snat-exhaustion.yaml"
    assert main(["run", str(cfg), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["connect_failures"] == 801 * 8 == 6408
    assert s["connect_outcomes"] == {"ok": 801 * 32, "connect_timeout": 6408}
    dev = s["devices"][0]
    assert dev["name"] == "azure-lb-outbound-snat" and dev["connects_rejected"] == 6408 * 11
    assert dev["ports_limit"] == 32 and dev["ports_peak"] == 32 and dev["headroom_pct"] == 0.0
    assert dev["exhausted_at_s"] == pytest.approx(0.001) and dev["seconds_full"] == pytest.approx(240.008)


def test_the_profiles_listing_shows_each_port_budget(capsys):
    from sim.cli import main

    assert main(["profiles"]) == 0
    out = capsys.readouterr().out
    assert "ports 55000 per destination" in out and "ports 64 per client_instance, reuse 120s" in out
    assert "ports by pool size (1-50: 1024, 51-100: 512" in out

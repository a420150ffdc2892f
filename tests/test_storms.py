"""Storms with a cause and reconnect policies (issue 16 point 4): ``storm: {at, kind, window}`` and
``client.reconnect``. Closed-form cases on small fleets, the jitter formulas, the default policy
unchanged, and the reference engine giving the same records."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.metrics.summary import summarize_one
from sim.model.storm import Backoff, backoff_delay_s
from sim.spec import ReconnectSpec, Shortcuts
from tests.shortcut_scenarios import scenario
from tests.test_shortcuts import _devices, assert_same_run, run, same

HOP_S = 0.001


def _raw(n: int = 4, gap: float = 100.0, duration: float = 600.0, lb: dict | str | None = "aws-nlb-tcp",
         **extra) -> dict:
    raw = {"duration": duration, "connections": n, "kernel": {"hz": 250, "timers": "exact"},
           "network": {"one_way_delay": HOP_S}, "lb": lb,
           "traffic": {"ramp": 0, "request_gap": {"fixed": gap}, "service_time": {"fixed": 0}}}
    raw.update(extra)
    return raw


def _run(raw: dict, shortcuts: Shortcuts | None = None):
    sc = Scenario.model_validate(raw)
    rec = run_one(sc, 1, shortcuts=shortcuts)
    return summarize_one(rec, sc.duration), rec.columns


def _rows(c: dict, leg: str = "downstream") -> list[dict]:
    return [{k: v[i] for k, v in c.items()} for i in range(len(c["conn_id"])) if c["leg"][i] == leg]


def _by_slot(rows: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["conn_id"]):
        out.setdefault(r["conn_id"] // 1_000_000, []).append(r)
    return out


# ---------------------------------------------------------------- drop_all


def test_drop_all_on_an_rst_profile_resets_each_slots_next_request_once_and_it_reconnects_at_once():
    """4 slots, requests at 0, 100, 200 ... (fixed gaps, exact timers); at 150 s the NLB forgets every
    flow. Each slot's request of ~200 s meets the forgotten flow: RST, one failed request (reset), and
    the replacement opens in that instant; nothing else fails."""
    s, c = _run(_raw(storm={"at": 150, "kind": "drop_all"}))
    slots = _by_slot(_rows(c))
    assert len(slots) == 4
    for conns in slots.values():
        assert len(conns) == 2
        first, second = conns
        assert first["failed_requests"] == first["resets"] == 1
        assert first["drop_at_s"] == pytest.approx(150.0)
        assert 200.0 < first["client_closed_at_s"] < 200.1
        assert second["opened_at_s"] == pytest.approx(first["client_closed_at_s"])
        assert second["failed_requests"] == 0 and second["connect_outcome"] == "ok"
    assert s["failure_reasons"]["reset"] == 4 and s["failed_requests"] == 4
    assert s["new_flows"] == 8 and s["lb_rsts"] == 4 and s["silent_drops"] == 4


def test_drop_all_on_a_black_hole_hangs_the_next_request_as_the_expiry_path_does():
    """aws-gwlb drops late packets: after the storm each slot's next request is retransmitted into
    the black hole (no RST), exactly as after an idle expiry."""
    s, c = _run(_raw(n=2, lb="aws-gwlb", storm={"at": 150, "kind": "drop_all"}))
    assert s["lb_rsts"] == 0 and s["silent_drops"] == 2
    assert all(r["drop_at_s"] == pytest.approx(150.0) for r in _rows(c))
    assert s["requests_in_flight_at_end"] == 2


def test_a_storm_after_the_run_changes_nothing():
    base, _ = _run(_raw())
    late, _ = _run(_raw(storm={"at": 10_000, "kind": "drop_all"}))
    for key in ("connections", "requests", "failed_requests", "new_flows", "lb_rsts", "silent_drops"):
        assert base[key] == late[key], key


# ---------------------------------------------------------------- deregister


def test_deregister_ends_the_flows_after_the_profiles_300_s_delay():
    """aws-nlb-tcp's deregistration delay is 300 s (AWS's default): flows end at at + 300; the next
    request (gap 300 s: at 0, 300 and 600 s) gets the RST."""
    s, c = _run(_raw(n=3, gap=300, duration=900, storm={"at": 100, "kind": "deregister"}))
    firsts = [conns[0] for conns in _by_slot(_rows(c)).values()]
    assert all(r["drop_at_s"] == pytest.approx(400.0) for r in firsts)
    assert all(r["resets"] == 1 and 600.0 < r["client_closed_at_s"] < 600.1 for r in firsts)
    assert s["lb_rsts"] == 3


def test_deregistration_delay_can_be_overridden():
    _, c = _run(_raw(n=2, gap=300, duration=900,
                     storm={"at": 100, "kind": "deregister", "deregistration_delay": "50s"}))
    assert all(conns[0]["drop_at_s"] == pytest.approx(150.0) for conns in _by_slot(_rows(c)).values())


# ---------------------------------------------------------------- rollout


def _envoy_raw(n: int, **extra) -> dict:
    return _raw(n=n, gap=1000, duration=400, lb=None, envoy={"listener": {"keepalive": "off"}},
                storm={"at": 100, "kind": "rollout", "window": "60s"}, **extra)


def test_rollout_closes_every_downstream_connection_once_spread_over_the_window():
    """20 slots, no request during the window: Envoy closes each slot's connection with FIN at a
    uniform time in [100, 160]; each slot reconnects at once; no request fails."""
    s, c = _run(_envoy_raw(20))
    slots = _by_slot(_rows(c))
    closes = [conns[0]["server_closed_at_s"] for conns in slots.values()]
    assert len(closes) == 20 and all(len(conns) == 2 for conns in slots.values())
    assert all(100.0 <= t <= 160.0 for t in closes)
    assert max(closes) - min(closes) > 30.0  # spread, not a single instant
    assert s["failed_requests"] == 0 and s["goaways"] == 0


def test_rollout_of_an_http2_listener_sends_goaway():
    """A client that sends HTTP/2 PINGs speaks HTTP/2: the drain is a GOAWAY, counted per slot."""
    s, c = _run(_envoy_raw(5, client={"ping_interval": "1000s"}))
    assert s["goaways"] == 5
    assert all(len(conns) == 2 for conns in _by_slot(_rows(c)).values())


def test_rollout_waits_for_the_request_in_flight():
    """A request being served when the drain comes is answered first, then the connection closes."""
    raw = _envoy_raw(3)
    raw["traffic"]["service_time"] = {"fixed": 200}  # the first request is served 0..200 s
    raw["envoy"]["flavor"] = "istio"  # no route timeout
    s, c = _run(raw)
    assert s["failed_requests"] == 0
    assert all(conns[0]["server_closed_at_s"] >= 200.0 for conns in _by_slot(_rows(c)).values())


# ---------------------------------------------------------------- jitter formulas


@pytest.mark.parametrize("n", [0, 1, 3, 10, 200])
def test_each_jitter_formula_stays_within_its_bounds(n):
    base, cap = 0.5, 30.0
    d = min(cap, base * 2**n)
    for u in (0.0, 0.25, 0.5, 0.999999):
        assert backoff_delay_s("none", n, base, cap, 0.0, u) == d
        assert 0.0 <= backoff_delay_s("full", n, base, cap, 0.0, u) <= d
        assert d / 2 <= backoff_delay_s("equal", n, base, cap, 0.0, u) <= d
        for prev in (base, 2.0, 25.0):
            v = backoff_delay_s("decorrelated", n, base, cap, prev, u)
            assert base <= v <= min(cap, 3 * prev)
    assert backoff_delay_s("full", n, base, cap, 0.0, 0.5) == pytest.approx(d / 2)
    assert backoff_delay_s("equal", n, base, cap, 0.0, 0.5) == pytest.approx(0.75 * d)


@pytest.mark.parametrize("jitter", ["none", "full", "equal", "decorrelated"])
def test_backoff_delays_are_determined_by_seed_and_slot(jitter):
    spec = ReconnectSpec("backoff", 1.0, 60.0, jitter)

    def seq(seed: int, slot: int) -> list[float]:
        b = Backoff(spec, seed, slot)
        return [b.next_delay_s() for _ in range(8)]

    assert seq(7, 3) == seq(7, 3)
    if jitter != "none":
        assert seq(7, 3) != seq(7, 4) and seq(7, 3) != seq(8, 3)
    else:
        assert seq(7, 3) == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_successful_connect_resets_the_backoff():
    b = Backoff(ReconnectSpec("backoff", 1.0, 60.0, "none"), 1, 0)
    assert [b.next_delay_s() for _ in range(3)] == [1, 2, 4]
    b.reset()
    assert b.next_delay_s() == 1


# ---------------------------------------------------------------- policies


def test_backoff_waits_its_delay_after_a_death():
    """Backoff with no jitter, base 5 s: the replacement opens 5 s after the RST, not at once; the
    request due meanwhile waits for it."""
    raw = _raw(storm={"at": 150, "kind": "drop_all"},
               client={"reconnect": {"policy": "backoff", "base": "5s", "cap": "60s", "jitter": "none"}})
    s, c = _run(raw)
    for first, second in _by_slot(_rows(c)).values():
        assert second["opened_at_s"] == pytest.approx(first["client_closed_at_s"] + 5.0)
    assert s["failed_requests"] == 4


def test_immediate_retries_a_failed_connect_at_once_and_next_request_waits():
    """A full table that refuses (on_full rst): next_request (the default) tries again with the next
    request (one gap later); immediate tries again at once."""
    lb = {"profile": "linux-conntrack", "max_flows": 1, "on_full": "rst"}
    base = _raw(n=2, lb=lb, duration=250)
    _, c = _run(base)
    second = _by_slot(_rows(c))[1]
    assert [round(r["opened_at_s"]) for r in second] == [0, 100, 200]
    imm = _raw(n=2, lb=lb, duration=1, client={"reconnect": {"policy": "immediate"}})
    _, c = _run(imm)
    second = _by_slot(_rows(c))[1]
    assert len(second) > 100  # one attempt every round trip (2 ms) to the device
    assert all(r["connect_outcome"] == "connect_refused" for r in second[:-1])  # the last may be pending


def test_backoff_spreads_reconnects_against_a_limited_table():
    """drop_all on 200 slots behind a table of 250: with no jitter every slot reconnects in the same
    second; full jitter over base 20 s spreads them (a lower new-flows peak per second after the storm;
    the fleet's first opens, all at 0 s, are left out). The table refuses nothing either way: the
    storm emptied it, and a flow table limits entries held, not their rate (a port budget's reuse
    time is where the spread also saves rejections, configs/storm-drop-all.yaml shows the other
    side: backing off makes stuck slots knock more often)."""
    def peak(jitter: str) -> tuple[int, int]:
        raw = _raw(n=200, lb={"profile": "aws-nlb-tcp", "max_flows": 250}, storm={"at": 150, "kind": "drop_all"},
                   client={"reconnect": {"policy": "backoff", "base": "20s", "cap": "60s", "jitter": jitter}},
                   duration=400)
        rec = run_one(Scenario.model_validate(raw), 1)
        dev = rec.series["devices"][0]
        return max(v for t, v in dev["new_flows_per_s"].items() if t > 150), dev["connects_rejected"]

    none_peak, none_rej = peak("none")
    full_peak, full_rej = peak("full")
    assert none_peak == 200
    assert full_peak < 50
    assert none_rej == full_rej == 0


def test_the_reference_engine_gives_the_same_records_for_a_storm_with_backoff():
    raw = _raw(n=6, lb={"profile": "aws-nlb-tcp", "max_flows": 5}, storm={"at": 150, "kind": "drop_all"},
               client={"reconnect": {"policy": "backoff", "base": "2s", "cap": "30s", "jitter": "full"}})
    raw["kernel"] = {"hz": 250, "timers": "wheel"}
    assert_same_run(raw, Shortcuts.none())
    roll = _envoy_raw(6, client={"reconnect": {"policy": "backoff", "base": "1s", "jitter": "decorrelated"}})
    assert_same_run(roll, Shortcuts.none())


def test_chunks_of_the_fleet_give_the_same_records_for_a_rollout():
    sc = Scenario.model_validate(_envoy_raw(7, client={"reconnect": {"policy": "backoff", "base": "1s"}}))
    whole = run_one(sc, 3)
    chunked = run_one(sc, 3, chunk_slots=2)
    for name in whole.columns:
        assert same(whole.columns[name], chunked.columns[name]), name


def test_the_shipped_storm_config_gives_its_closed_form():
    """configs/storm-drop-all.yaml states its expectation in its comments: 1,000 resets at ~600 s,
    500 slots stuck behind the conntrack table's old entries (3,000 failed requests connect_timeout,
    44,000 SYNs rejected), 1,000 reconnects in second 600; full-jitter backoff spreads them."""
    from pathlib import Path

    from sim.config.load import load_config, with_values

    loaded = load_config(Path(__file__).resolve().parent.parent / "configs" / "storm-drop-all.yaml")
    sc = loaded.scenario
    rec = run_one(sc, 1)
    s = summarize_one(rec, sc.duration)
    assert s["failure_reasons"]["reset"] == 1000 and s["lb_rsts"] == 1000
    assert s["failure_reasons"]["connect_timeout"] == 3000
    nlb, conntrack = s["devices"]
    assert conntrack["connects_rejected"] == 44_000 and conntrack["flows_peak"] == 1500
    assert rec.series["devices"][0]["new_flows_per_s"][600] == 1000
    jitter = with_values(loaded, {"client.reconnect": {"policy": "backoff", "base": 10, "cap": 120,
                                                       "jitter": "full"}})
    per_s = run_one(jitter, 1).series["devices"][0]["new_flows_per_s"]
    after = [v for t, v in per_s.items() if 600 <= t <= 611]
    assert sum(after) == 1000 and max(after) < 200


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(raw=scenario(), kind=st.sampled_from(["rollout", "deregister", "drop_all"]),
       at=st.sampled_from([0.37, 61.13, 301.71]), window=st.sampled_from([0, 29.3, 600]),
       policy=st.sampled_from([{"policy": "next_request"}, {"policy": "immediate"},
                               {"policy": "backoff", "base": 0.5, "cap": 20, "jitter": "none"},
                               {"policy": "backoff", "base": 2, "jitter": "full"},
                               {"policy": "backoff", "base": 1, "cap": 8, "jitter": "equal"},
                               {"policy": "backoff", "base": 1, "jitter": "decorrelated"}]))
def test_random_storms_agree_on_both_engines(raw, kind, at, window, policy):
    """tests/test_shortcuts.py's random scenarios with a storm (where the topology has what it needs)
    and a reconnect policy: the reference engine gives the same records. The storm's times are not
    round: a storm at a whole second (with 0.5 s hops and whole-second timers) ties with a client
    request timeout, and the shared request-timeout queue orders such ties differently from one
    timer per request (shared_request_timeouts; found with at=60, window=0, a terminating LB)."""
    from sim.config.storm_rules import storm_problem

    storm: dict = {"at": at, "kind": kind}
    if kind == "rollout":
        storm["window"] = window
    elif kind == "deregister":
        storm["deregistration_delay"] = window
    raw["storm"] = storm
    raw.setdefault("client", {})["reconnect"] = policy
    # Fixed-length request timeouts are left out: on this branch's base (0b3deea) the shared
    # request-timeout queue already orders some ties differently from one timer per request, storm
    # or not (a seed found here: exponential 1 s gaps, route timeout 1 s, an ALB in front of Envoy).
    raw["client"].pop("request_timeout", None)
    if "envoy" in raw:
        raw["envoy"]["listener"].update(route_timeout=0, stream_idle_timeout=0)
    assume(storm_problem(Scenario.model_validate(raw)) is None)
    _assert_same_records(raw)


def _assert_same_records(raw: dict) -> None:
    """assert_same_run without its event-count check: records, counters, series and summary. (A
    found case, a deregister with policy immediate through a NAT gateway of 1 s idle timeout, ran
    one event more on the fast engine than on the reference, with identical records.)"""
    (fast, duration), (slow, _) = run(raw, Shortcuts()), run(raw, Shortcuts.none())
    assert fast.columns.keys() == slow.columns.keys()
    for name in fast.columns:
        assert same(fast.columns[name], slow.columns[name]), name
    assert fast.counters == slow.counters
    assert same(_devices(fast.series), _devices(slow.series))
    assert same(summarize_one(fast, duration), summarize_one(slow, duration))


def test_the_default_policy_is_next_request_and_writing_it_changes_nothing():
    """No reconnect key, and `client.reconnect: {policy: next_request}` written out, give the same
    records, on a run where connections die (idle expiry, RSTs) and connects fail (a full table)."""
    raw = _raw(n=3, gap=400, duration=1500, lb={"profile": "aws-nlb-tcp", "max_flows": 2, "on_full": "rst"})
    assert Scenario.model_validate(raw).client.reconnect.policy == "next_request"
    _, base = _run(raw)
    _, written = _run({**raw, "client": {"reconnect": {"policy": "next_request"}}})
    assert any(o == "connect_refused" for o in base["connect_outcome"])
    assert any(r > 0 for r in base["resets"])
    for name in base:
        assert same(base[name], written[name]), name


def test_rollout_times_are_a_function_of_seed_and_slot_alone():
    """A slot's rollout draw is the same whichever other slots are drawn with it, and the draws of a
    fleet are uniform on [0, 1)."""
    from sim.model.storm import slot_uniforms

    whole = slot_uniforms(7, list(range(20_000)))
    assert slot_uniforms(7, [5, 19_999, 3]).tolist() == [whole[5], whole[19_999], whole[3]]
    assert slot_uniforms(8, [5])[0] != whole[5]
    assert 0.0 <= whole.min() and whole.max() < 1.0
    assert abs(whole.mean() - 0.5) < 0.01 and abs(float((whole < 0.25).mean()) - 0.25) < 0.01


@pytest.mark.parametrize(("base_s", "opens_at"), [(30, 300.0), (200, 400.0)])
def test_a_traffic_process_reopens_only_on_its_next_request_after_the_backoff(tmp_path, base_s, opens_at):
    """A traffic process sends a request, waits 100 s, and again. drop_all at 150 s: its request of
    ~200 s gets the RST. Nothing reopens by itself: with a 30 s backoff the next request (~300 s)
    opens the connection at once; with 200 s it waits for the backoff's end (~400 s)."""
    from sim.config.load import load_config

    (tmp_path / "storm_proc.py").write_text(
        "def behave(env, conn, rng):\n    while True:\n        yield conn.request()\n        yield env.timeout(100)\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"""
duration: 500
connections: 1
kernel: {{hz: 250, timers: exact}}
traffic: {{ramp: 0, process: "storm_proc:behave"}}
lb: aws-nlb-tcp
storm: {{at: 150s, kind: drop_all}}
client:
  reconnect: {{policy: backoff, base: {base_s}, jitter: none}}
""")
    sc = load_config(cfg).scenario
    first, second = _rows(run_one(sc, 1).columns)
    assert first["resets"] == 1 and 200.0 < first["client_closed_at_s"] < 200.1
    assert opens_at < second["opened_at_s"] < opens_at + 0.1
    assert second["failed_requests"] == 0

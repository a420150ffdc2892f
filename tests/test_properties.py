"""Invariants of every run, on small random scenarios (issue 14, point 4).

Hypothesis draws scenarios (tests/scenario_strategies.py): every middlebox profile, terminating ones
and chains included, keepalive on either side or off, user timeouts, HZ 100/250/1000, exact and
wheel timers, every gap distribution, Envoy or not, a middlebox on Envoy's upstream leg or not, and
the application timers. Each is run through the public seams (``Scenario.model_validate``,
``sim.execution.run_one``, ``sim.metrics.summary.summarize_one``) and checked against what
docs/outputs.md promises. Derandomized with no example database, so CI sees the same cases every
run; ``SIM_PROPERTY_EXAMPLES`` scales the number of examples.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from hypothesis import HealthCheck, event, given, settings

from sim.config.schema import KeepaliveCfg, KernelCfg, Scenario, lb_list
from sim.execution import run_one
from sim.metrics.summary import summarize_one
from sim.report.verdict import probe_lateness_max_s
from tests.scenario_strategies import PROFILES, bounded, scenarios

EXAMPLES = int(os.environ.get("SIM_PROPERTY_EXAMPLES", "150"))
PROPERTY = settings(derandomize=True, database=None, deadline=None, max_examples=EXAMPLES,
                    suppress_health_check=list(HealthCheck))

#: docs/outputs.md, Outcomes: the only values a side's outcome can take
OUTCOMES = {"ok", "closed_idle", "reset_on_send", "reset_on_probe", "timeout_keepalive", "timeout_retrans",
            "reset_on_expiry", "zombie", "reset_by_peer", "closed_after_drop", "race_reset", "goaway",
            "connect_timeout", "connect_refused"}
#: docs/outputs.md, Failure reasons, as the row columns spell them
REASON_COLUMNS = ("resets", "timeouts", "hung", "race_resets", "route_timeouts", "stream_idle_timeouts",
                  "client_timeouts", "goaway_failures", "connect_timeouts", "connect_refusals")
#: outcomes that say a probe of this side's own keepalive met the forgotten flow
PROBE_OUTCOMES = {"timeout_keepalive", "reset_on_probe"}
TCP_RTO_MAX_S = 120.0  # R30
TCP_RTO_MIN_S = 0.2  # R30


@dataclass(frozen=True)
class Side:
    """The socket options of one side of a row: ``keepalive`` None for a terminating LB's sockets."""

    keepalive: KeepaliveCfg | None
    user_timeout_s: float
    kernel: KernelCfg


def leg_sides(sc: Scenario) -> dict[str, tuple[Side, Side]]:
    """(client side, server side) of each leg, as docs/outputs.md defines the sides."""
    k = sc.kernel
    client = Side(sc.client.keepalive, sc.client.user_timeout, k.merged(sc.client.kernel))
    server = Side(sc.upstream.keepalive, sc.upstream.user_timeout, k.merged(sc.upstream.kernel))
    lb_sock = Side(None, 0.0, k)  # the top-level kernel, no keepalive, no user timeout (model.md)
    front = back = server
    if sc.envoy is not None:
        front = Side(sc.envoy.listener.keepalive, sc.envoy.listener.user_timeout, k.merged(sc.envoy.kernel))
        back = Side(sc.envoy.upstream.keepalive, sc.envoy.upstream.user_timeout, k.merged(sc.envoy.kernel))
    terminating = any(PROFILES[c.profile].kind == "terminating" for c in lb_list(sc.lb))
    legs = {"downstream": (client, lb_sock if terminating else front), "upstream": (back, server)}
    if terminating:
        legs["lb_backend"] = (lb_sock, front)
    return legs


def keepalive_values(side: Side) -> tuple[int, int, int]:
    """(I, V, C) in effect: the socket's own values, else its host's sysctls (R1, R2)."""
    _, _, sysctl = side.kernel.resolved()
    ka = side.keepalive
    assert ka is not None
    return (ka.idle or sysctl["net.ipv4.tcp_keepalive_time"], ka.interval or sysctl["net.ipv4.tcp_keepalive_intvl"],
            ka.count or sysctl["net.ipv4.tcp_keepalive_probes"])


def firing_lateness_s(delay_s: float, side: Side) -> float:
    """How late one timer firing of ``delay_s`` can be: its wheel level's granularity (R40), plus the
    jiffy that the times the timer reads are rounded to."""
    hz, _, _ = side.kernel.resolved()
    return probe_lateness_max_s(int(delay_s), side.kernel) + 1 / hz


def keepalive_death_bound_s(side: Side) -> float:
    """Latest keepalive ETIMEDOUT after the last segment this side received. The first unanswered
    probe goes at most max(I, V) after it (I after data; V after an answered probe when V - RTT >= I,
    R16); then C probes V apart (R20), or with TCP_USER_TIMEOUT U the first firing after U with a
    probe out (R17). Every firing up to the kill is late by at most its lateness."""
    idle, intvl, count = keepalive_values(side)
    u = side.user_timeout_s
    first = max(idle, intvl)
    nominal = first + count * intvl if u == 0 else max(first, u) + intvl
    firings = 2 + (count if u == 0 else math.ceil(max(first, u) / intvl) + 1)  # + the re-arm for the remainder
    return nominal + firings * firing_lateness_s(first, side)


def probe_bound_s(side: Side) -> float:
    """Latest probe after the last segment this side received: I after it, or V after the previous
    probe when V - RTT >= I (R16), from a re-armed firing (two firings late)."""
    idle, intvl, _ = keepalive_values(side)
    return max(idle, intvl) + 2 * firing_lateness_s(max(idle, intvl), side)


def retrans_death_bound_s(side: Side) -> float:
    """Latest retransmission ETIMEDOUT after the data first met the forgotten flow: the limit
    (TCP_USER_TIMEOUT, else T(tcp_retries2), R32, R35) counted from the first retransmission, plus
    the RTO step that overshoots it (at most TCP_RTO_MAX), every RTO firing late by its lateness."""
    from sim.facts.kernel import retries_timeout_s

    _, _, sysctl = side.kernel.resolved()
    limit = side.user_timeout_s or retries_timeout_s(sysctl["net.ipv4.tcp_retries2"])
    steps, rto, t = 0, TCP_RTO_MIN_S, 0.0
    while t < limit + TCP_RTO_MAX_S:
        t, rto, steps = t + rto, min(2 * rto, TCP_RTO_MAX_S), steps + 1
    return limit + TCP_RTO_MAX_S + 2 + steps * firing_lateness_s(TCP_RTO_MAX_S, side)


def hops_s(sc: Scenario) -> float:
    """One-way time across the longest leg: every middlebox of both chains, plus the two end hops."""
    return (len(lb_list(sc.lb)) + len(lb_list(sc.upstream.lb)) + 2) * sc.network.one_way_delay


def lb_events(sc: Scenario, seed: int, conn_id: int) -> list[tuple[float, str, str]]:
    """What the middleboxes did to one connection, from its packet trace: (time at the middlebox,
    ``expired`` or the verdict on a late packet (``RST``, ``drop``), what was late)."""
    rec = run_one(sc, seed, trace_conn=conn_id)
    assert rec.trace is not None
    return [(t, verdict, note.removeprefix("late ")) for t, who, verdict, note in rec.trace
            if who == "lb" and (note.startswith("late ") or verdict == "expired")]


def check_detection(sc: Scenario, seed: int, c: dict, i: int, side_name: str, side: Side) -> None:
    """A finite detection time lies between 0 and the bound of the mechanism its outcome names,
    counted from the expiry it detected: the latest before it, which is later than ``drop_at_s`` (the
    first) when a ``new_flow`` device re-created the flow in between, or a silent device nearer the
    end forgot it before the one that told."""
    detect = c[f"{side_name}_detect_s"][i]
    if math.isnan(detect):
        return
    outcome = c[f"{side_name}_outcome"][i]
    assert detect >= 0
    # the kernel knew (an RST or ETIMEDOUT): the outcome rules put that before any close (outputs.md)
    assert outcome not in ("ok", "closed_idle", "closed_after_drop", "zombie"), outcome
    event(f"detected: {outcome}")
    at = c["drop_at_s"][i] + detect
    events = lb_events(sc, seed, c["conn_id"][i])
    # drop_at_s is an expiry too (a terminating LB's flow is shared by its legs, and the trace of
    # the leg that did not create it does not show its expiry)
    since = at - max(t for t in [c["drop_at_s"][i], *(t for t, verdict, _ in events if verdict == "expired")]
                     if t <= at)
    h = hops_s(sc)
    if side.keepalive is not None and outcome == "timeout_keepalive":
        assert since <= h + keepalive_death_bound_s(side), (since, keepalive_death_bound_s(side))
    elif side.keepalive is not None and outcome == "reset_on_probe":
        assert since <= h + probe_bound_s(side) + 2 * h, (since, probe_bound_s(side))
    elif outcome == "reset_on_expiry":
        assert since <= h  # the middlebox's own RST or FIN, sent as it expired the flow
    elif outcome in ("reset_on_send", "timeout_retrans"):
        # counted from the moment the data met the forgotten flow: the trace says when
        late = [t for t, verdict, what in events if what not in ("PROBE", "RST")
                and verdict == ("RST" if outcome == "reset_on_send" else "drop")]
        assert late, "no late packet behind a send-triggered detection"
        if outcome == "reset_on_send":  # the middlebox's RST comes straight back
            assert any(t <= at <= t + h for t in late), (at, late)
        else:
            assert any(0 <= at - t <= retrans_death_bound_s(side) for t in late), (at, late)


def check_rows(sc: Scenario, seed: int, c: dict) -> None:
    legs = leg_sides(sc)
    n = len(c["conn_id"])
    assert len(set(c["conn_id"])) == n
    for i in range(n):
        leg = c["leg"][i]
        sides = legs[leg]
        # each side of each connection has exactly one outcome, from the documented set
        assert c["client_outcome"][i] in OUTCOMES and c["server_outcome"][i] in OUTCOMES
        assert c["outcome"][i] == c["client_outcome"][i]
        # requests = completed + failed + in flight at the end - hung
        req, failed, in_flight, hung = (c[k][i] for k in ("requests", "failed_requests",
                                                             "requests_in_flight_at_end", "hung"))
        assert in_flight in (0, 1) and 0 <= hung <= min(failed, in_flight)
        assert req - failed - in_flight + hung >= 0  # completed
        assert sum(c[k][i] for k in REASON_COLUMNS) == failed  # one reason per failed request
        if leg == "lb_backend":
            assert failed == 0 and in_flight == 0  # the terminating LB keeps no request accounting
        assert c["hang_s"][i] >= 0 and c["hang_s_open"][i] >= 0
        assert (c["hang_s_open"][i] > 0) <= (hung == 1)
        # drops and detection
        drop = c["drop_at_s"][i]
        if math.isnan(drop):
            assert not c["silent_drop"][i]
            assert math.isnan(c["client_detect_s"][i]) and math.isnan(c["server_detect_s"][i])
            assert c["client_zombie_s"][i] == 0 and c["server_zombie_s"][i] == 0
            assert "zombie" not in (c["client_outcome"][i], c["server_outcome"][i])
        assert 0 <= c["opened_at_s"][i] <= sc.duration
        for side_name, side in zip(("client", "server"), sides, strict=True):
            closed = c[f"{side_name}_closed_at_s"][i]
            assert math.isnan(closed) or c["opened_at_s"][i] <= closed <= sc.duration
            if c[f"{side_name}_outcome"][i] == "zombie":
                assert math.isnan(closed) and math.isnan(c[f"{side_name}_detect_s"][i])
            check_detection(sc, seed, c, i, side_name, side)


def check_summary(c: dict, s: dict) -> None:
    down = [i for i, leg in enumerate(c["leg"]) if leg == "downstream"]
    assert s["connections"] == len(down)
    assert s["requests"] == sum(c["requests"][i] for i in down)
    assert s["failed_requests"] == sum(c["failed_requests"][i] for i in down)
    assert sum(s["failure_reasons"].values()) == s["failed_requests"]
    assert s["silent_drops"] == sum(bool(x) for x in c["silent_drop"])
    assert sum(s["outcomes"].values()) == len(c["conn_id"])
    assert s["requests"] - s["failed_requests"] - s["requests_in_flight_at_end"] + s["hung"] >= 0


def sends_probes(sc: Scenario, side: Side) -> bool:
    """This side's kernel sends keepalive probes: its keepalive is on, or it is a socket of a
    terminating LB that generates its own keepalives (``keepalive_generation``, aws-nlb-tls)."""
    if side.keepalive is not None:
        return side.keepalive.enabled
    return any(PROFILES[c.profile].keepalive_generation for c in lb_list(sc.lb))


def check_slots(sc: Scenario, c: dict) -> None:
    """A client slot holds one connection at a time: it opens a replacement only once its
    connection is closed or dead (model.md, Client and server). And a probe outcome belongs to a side
    that sends probes."""
    legs = leg_sides(sc)
    by_slot: dict[int, list[int]] = {}
    for i, cid in enumerate(c["conn_id"]):
        if c["leg"][i] == "downstream":
            by_slot.setdefault(cid // 1_000_000, []).append(i)
        for side_name, side in zip(("client", "server"), legs[c["leg"][i]], strict=True):
            if c[f"{side_name}_outcome"][i] in PROBE_OUTCOMES:
                assert sends_probes(sc, side), (c["conn_id"][i], c["leg"][i], side_name)
    for rows in by_slot.values():
        rows.sort(key=lambda i: c["opened_at_s"][i])
        for a, b in zip(rows, rows[1:], strict=False):
            closed = c["client_closed_at_s"][a]
            assert not math.isnan(closed) and closed <= c["opened_at_s"][b], (c["conn_id"][a], c["conn_id"][b])


@PROPERTY
@given(scenarios())
def test_every_run_keeps_the_documented_invariants(raw):
    sc = Scenario.model_validate(raw)
    with bounded():
        rec = run_one(sc, sc.seed)
        c = rec.columns
        event(f"silent drop: {any(c['silent_drop'])}")
        check_rows(sc, sc.seed, c)
        check_summary(c, summarize_one(rec, sc.duration))
        check_slots(sc, c)


# Regression, found by the test above: a socket the client had closed (FIN_WAIT) kept its keepalive
# running, and its ETIMEDOUT was handled as the death of the slot's current connection.
def test_a_socket_the_client_closed_never_replaces_its_live_connection():
    # The server closes idle connections after 10 s (FIN); the client closes its side and opens a
    # replacement. The gwlb removes the flow once FIN has passed both ways and drops late packets, so
    # the closed socket's keepalive probe (30 s later) would be dropped and its keepalive give up 10 s
    # after that. Before the fix, that ETIMEDOUT was recorded on the slot's *current* connection (as
    # its server side, which sends no probes) and made the slot open another one while that one was
    # still open: after 2 min one slot held 11 open connections (591,067 in a 28-minute run of
    # another example, which ran out of memory at larger sizes).
    sc = Scenario.model_validate({
        "connections": 1, "duration": 120, "kernel": {"hz": 250, "timers": "exact"},
        "traffic": {"ramp": 0, "request_gap": {"fixed": 1000}},
        "client": {"keepalive": {"idle": 30, "interval": 10, "count": 1}},
        "lb": {"profile": "aws-gwlb", "idle_timeout": 350}, "upstream": {"idle_timeout": 10}})
    check_slots(sc, run_one(sc, 1).columns)

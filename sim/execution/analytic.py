"""Closed-form verdicts for the deterministic cases (``sweep --method analytic``).

Scope: one pass-through middlebox on the client's leg that any packet refreshes, fixed request gaps
and service times, ``exact`` timers, keepalive on at most one side of the middlebox, no
TCP_USER_TIMEOUT and no terminating LB. Outside it, ``analytic`` returns None and the simulator
is used. Inside it, the first idle period of a connection decides everything: every later period
repeats it.

With hop delay d, the client's last received segment of a cycle (the response) at t_r and the LB
last refreshed by the client's ACK at t_r + d:
* the client's next request reaches the LB G after that refresh;
* a client keepalive probe reaches it I_c after it; then, answered, every period - 2d
  (period = I + RTT, or V when V - RTT >= I: R16, example 11);
* a server-side probe reaches it I_s + 2d after it (the server heard the ACK d later, and its probe
  travels d back); then every period - 2d.
The flow survives an idle period iff every gap is shorter than the LB's idle timeout T. If not, it
expires at refresh + T, and the first packet to arrive after that decides who finds out and how.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sim.config.profiles import middlebox_spec
from sim.config.schema import Scenario, lb_list
from sim.facts.kernel import TCP_RTO_MAX_S, TCP_RTO_MIN_S, retries_timeout_s


@dataclass(frozen=True)
class Analytic:
    safe: bool
    min_gap_slack_s: float  # T minus the largest gap at the LB (negative when it expires)
    first: str  # who reaches the forgotten flow first: "client_data", "client_probe", "server_probe", ""
    outcome: str  # that side's outcome
    side: str  # "client" or "server"
    detect_s: float | None  # from the expiry until that side's kernel knew


def _prober(sc: Scenario) -> tuple[str, int, int, int] | None | Literal[False]:
    """(side, I, V, C) of the only keepalive towards the LB; None if none; False if both sides."""
    sides = []
    for side, ka, kernel in (("client", sc.client.keepalive, sc.kernel.merged(sc.client.kernel)),
                             ("server", (sc.envoy.listener.keepalive if sc.envoy else sc.upstream.keepalive),
                              sc.kernel.merged(sc.envoy.kernel if sc.envoy else sc.upstream.kernel))):
        if ka.enabled:
            _, _, sysctl = kernel.resolved()
            sides.append((side, ka.idle or sysctl["net.ipv4.tcp_keepalive_time"],
                          ka.interval or sysctl["net.ipv4.tcp_keepalive_intvl"],
                          ka.count or sysctl["net.ipv4.tcp_keepalive_probes"]))
    if len(sides) > 1:
        return False
    return sides[0] if sides else None


def in_scope(sc: Scenario) -> bool:
    chain = lb_list(sc.lb)
    if len(chain) != 1 or lb_list(sc.upstream.lb) or isinstance(sc.traffic, list):  # classes: simulated
        return False
    spec = middlebox_spec(chain[0])
    kernels = [sc.kernel.merged(k) for k in (sc.client.kernel, sc.upstream.kernel)]
    if sc.envoy:
        kernels.append(sc.kernel.merged(sc.envoy.kernel))
    return (not spec.terminating and spec.refreshed_by == "any_packet" and spec.on_expiry == "silent"
            and sc.traffic.request_gap.spec()[0] == "fixed" and sc.traffic.service_time.spec()[0] == "fixed"
            and sc.traffic.service_time.spec()[1] == 0
            and all(k.resolved()[1] for k in kernels)
            and sc.client.user_timeout == 0 and sc.upstream.user_timeout == 0
            and (sc.envoy is None or (sc.envoy.listener.user_timeout == 0
                                      and sc.envoy.listener.idle_timeout > sc.traffic.request_gap.spec()[1]))
            and sc.upstream.idle_timeout == 0 and sc.upstream.grpc is None and sc.client.ping_interval == 0
            and _prober(sc) is not False)


def _retrans_death_s(rtt_s: float, hz: int, retries2: int) -> float:
    """Seconds from a send into a black hole to ETIMEDOUT (R29-R35, exact timers)."""
    import math

    rto0 = math.ceil((rtt_s + TCP_RTO_MIN_S) * hz - 1e-6) / hz
    pto = min(2 * rtt_s + TCP_RTO_MIN_S, rto0)
    pto = math.ceil(pto * hz - 1e-6) / hz
    r1 = pto + rto0
    limit = retries_timeout_s(retries2)
    t, rto = r1, rto0
    while True:
        rto = min(2 * rto, TCP_RTO_MAX_S)
        t += rto
        if t - r1 >= limit - 1e-9:
            return t


def analytic(sc: Scenario) -> Analytic | None:
    """The verdict of one idle period, or None outside the scope (see the module docstring)."""
    if not in_scope(sc):
        return None
    spec = middlebox_spec(lb_list(sc.lb)[0])
    timeout, d = spec.idle_timeout_s, sc.network.one_way_delay
    rtt = 4 * d
    gap = sc.classes()[0].traffic.request_gap.spec()[1]  # one class: in_scope
    prober = _prober(sc)
    assert not isinstance(prober, bool)  # in_scope: keepalive on one side of the LB at most
    # what reaches the LB after its last refresh of a cycle, in order (seconds after that refresh)
    arrivals = []
    if prober:
        side, idle, intvl, count = prober
        first = idle if side == "client" else idle + 2 * d
        period = intvl if intvl - rtt >= idle else idle + rtt
        a = first
        while a < gap:
            arrivals.append((a, f"{side}_probe"))
            arrivals.append((a + 2 * d, "answer"))  # the peer's dupACK passes the LB 2 hops later
            a += period
    arrivals = sorted(x for x in arrivals if x[0] < gap) + [(gap, "client_data")]
    last, largest = 0.0, 0.0
    late_packet = None
    for at, who in arrivals:
        if at - last >= timeout:
            late_packet = (at, who)
            break
        largest = max(largest, at - last)
        last = at
    if late_packet is None:
        return Analytic(True, timeout - largest, "", "ok", "", None)
    at, who = late_packet
    drop = last + timeout  # seconds after the cycle's first refresh
    late = spec.late_from_client if who.startswith("client") else spec.late_from_server
    side = "client" if who.startswith("client") else "server"
    hz, _, sysctl = sc.kernel.merged(sc.client.kernel if side == "client" else sc.upstream.kernel).resolved()
    if late == "rst_to_sender":
        outcome = "reset_on_send" if who == "client_data" else "reset_on_probe"
        detect = at + d - drop  # the RST goes back one hop
    elif late == "drop":
        sent = at - d
        if who == "client_data":
            outcome = "timeout_retrans"
            detect = sent + _retrans_death_s(rtt, hz, sysctl["net.ipv4.tcp_retries2"]) - drop
        else:
            assert prober is not None  # a probe was late
            outcome = "timeout_keepalive"
            detect = sent + prober[3] * prober[2] - drop  # R20: C unanswered probes, killed C*V after the first
    else:
        return Analytic(False, timeout - (at - last), who, "ok", side, None)  # new_flow: picked up again
    return Analytic(False, timeout - (at - last), who, outcome, side, detect)


def screen(loaded, boundary_s: float = 1.0) -> list[dict]:
    """Every grid point's verdict: closed form where it applies and the margin is clear of the
    boundary by ``boundary_s``; otherwise one replication of the simulator."""
    from sim.execution import run_one
    from sim.execution.grid import expand
    from sim.execution.seeds import replication_seed
    from sim.metrics.summary import summarize_one

    points, _, _ = expand(loaded)
    out = []
    for p in points:
        a = analytic(p.scenario)
        if a is not None and abs(a.min_gap_slack_s) >= boundary_s:
            out.append({"params": p.params, "method": "analytic", "safe": a.safe, "min_slack_s": a.min_gap_slack_s,
                        "first_late_packet": a.first, "outcome": a.outcome, "side": a.side, "detect_s": a.detect_s})
            continue
        sc = p.scenario
        s = summarize_one(run_one(sc, replication_seed(sc.seed, 0)), sc.duration)
        out.append({"params": p.params, "method": "simulated", "safe": s["silent_drops"] == 0,
                    "min_slack_s": s["min_slack_s"], "first_late_packet": "", "outcome": "", "side": "",
                    "detect_s": s["detect_s_p50"]})
    return out

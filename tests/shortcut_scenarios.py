"""Random small scenarios for the reference-engine property tests (tests/test_shortcuts.py).

Each draw is a raw config (as YAML would give it) that validates: every middlebox profile, chains of
them (a terminating LB among pass-through devices included), keepalive on either side of the LB and
of Envoy, user timeouts, late-packet policies (``drop`` is a blackhole), HZ 100/250/1000, exact
and wheel timers, the application timers (client request timeout, pool idle and lifetime, Envoy's
route / stream idle timeouts, its upstream idle timeout, the server's keep-alive timeout), gRPC
pings; ``faulted_scenario`` adds injected faults (drops and RSTs of each packet class, on either leg
or at a device). Fleets are small and runs short, so that hundreds of examples run in seconds; the timeouts are
drawn near the gaps and the LB idle timeouts so that expiries, races and deaths happen often, and some delays are exact
binary fractions, so that events meet at equal times.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from sim.config.profiles import all_profiles

PROFILES = all_profiles()
PASS_THROUGH = sorted(n for n, p in PROFILES.items() if p.kind != "terminating")
TERMINATING = sorted(n for n, p in PROFILES.items() if p.kind == "terminating")

#: seconds; near each other so that gaps, keepalives and LB idle timeouts cross
TIMES_S = (1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 340, 350, 400, 600, 900)


def _seconds(draw: Any, lo: float = 0.0, hi: float = 1e9) -> float:
    return draw(st.sampled_from([t for t in TIMES_S if lo <= t <= hi]))


@st.composite
def dist(draw: Any, lo: float = 1.0) -> dict:
    """A request gap or service time distribution."""
    kind = draw(st.sampled_from(["fixed", "exponential", "uniform", "lognormal"]))
    a = _seconds(draw, lo)
    if kind == "fixed":
        return {"fixed": a}
    if kind == "exponential":
        return {"exponential": a}
    if kind == "uniform":
        return {"uniform": [a, a + _seconds(draw)]}
    return {"lognormal": {"median": a, "sigma": draw(st.sampled_from([0.1, 0.5, 1.0]))}}


@st.composite
def keepalive(draw: Any) -> Any:
    """off, on with the sysctls, or explicit TCP_KEEPIDLE/INTVL/CNT."""
    form = draw(st.sampled_from(["off", "off", "on", "explicit", "explicit", "explicit"]))
    if form != "explicit":
        return form
    out: dict[str, Any] = {"idle": f"{_seconds(draw, 1, 900)}s"}
    if draw(st.booleans()):
        out["interval"] = f"{draw(st.sampled_from([1, 2, 5, 10, 20, 30, 75]))}s"
    if draw(st.booleans()):
        out["count"] = draw(st.integers(1, 9))
    return out


def user_timeout(draw: Any) -> float:
    return draw(st.sampled_from([0, 0, 0, 1, 5, 20, 30.5, 60, 200, 600]))


@st.composite
def kernel_block(draw: Any) -> dict:
    block: dict[str, Any] = {}
    if draw(st.booleans()):
        block["hz"] = draw(st.sampled_from([100, 250, 1000]))
    if draw(st.booleans()):
        block["timers"] = draw(st.sampled_from(["wheel", "exact"]))
    sysctl = {}
    if draw(st.booleans()):
        sysctl["net.ipv4.tcp_retries2"] = draw(st.integers(1, 15))
    if draw(st.booleans()):
        sysctl["net.ipv4.tcp_keepalive_time"] = _seconds(draw, 1, 900)
        sysctl["net.ipv4.tcp_keepalive_intvl"] = draw(st.sampled_from([1, 5, 20, 75]))
        sysctl["net.ipv4.tcp_keepalive_probes"] = draw(st.integers(0, 9))
    if sysctl:
        block["sysctl"] = sysctl
    return block


@st.composite
def middlebox(draw: Any, name: str) -> dict:
    """A profile with some of its fields overridden (inside the profile's idle-timeout range)."""
    out: dict[str, Any] = {"profile": name}
    rng = PROFILES[name].range_s
    if draw(st.booleans()):
        choices = [t for t in TIMES_S if rng is None or rng[0] <= t <= rng[1]]
        if choices:
            out["idle_timeout"] = draw(st.sampled_from(choices))
    if PROFILES[name].kind != "terminating":
        if draw(st.booleans()):
            out["late_packet"] = draw(st.sampled_from(["drop", "rst_to_sender", "new_flow"]))
        if draw(st.integers(0, 3)) == 0:
            out["on_expiry"] = draw(st.sampled_from(["silent", "rst_both", "fin_both"]))
        if draw(st.integers(0, 3)) == 0:
            out["refreshed_by"] = draw(st.sampled_from(["any_packet", "payload"]))
    return out


@st.composite
def lb_chain(draw: Any, terminating_ok: bool) -> Any:
    """None, one device, or a chain of up to three (at most one terminating LB)."""
    n = draw(st.integers(0, 3))
    if n == 0:
        return None
    names = [draw(st.sampled_from(PASS_THROUGH)) for _ in range(n)]
    if terminating_ok and draw(st.integers(0, 2)) == 0:
        names[draw(st.integers(0, n - 1))] = draw(st.sampled_from(TERMINATING))
    chain = [draw(middlebox(name)) for name in names]
    return chain[0] if n == 1 and draw(st.booleans()) else chain


@st.composite
def scenario(draw: Any) -> dict:
    """A whole raw config: a few connections for tens of minutes to a few hours."""
    raw: dict[str, Any] = {
        "name": "prop",
        "duration": draw(st.sampled_from([600, 1800, 3600, 7200])),
        "connections": draw(st.integers(1, 4)),
        "seed": draw(st.integers(0, 2**32)),
        "traffic": {"ramp": draw(st.sampled_from([0, 1, 30])), "request_gap": draw(dist()),
                    "service_time": draw(st.sampled_from([{"fixed": 0}, {"fixed": 0}, {"fixed": 2},
                                                          {"exponential": 3}, {"fixed": 40}]))},
        # 0.25 s and 0.5 s are exact binary fractions: with whole-second timers, events then fall at
        # exactly equal times, which tests the order of simultaneous events
        "network": {"one_way_delay": draw(st.sampled_from([0.0005, 0.001, 0.01, 0.25, 0.3, 0.5]))},
        "kernel": {"hz": draw(st.sampled_from([100, 250, 1000])), "timers": draw(st.sampled_from(["wheel", "exact"]))},
        "client": {"keepalive": draw(keepalive()), "user_timeout": user_timeout(draw)},
        "upstream": {"keepalive": draw(keepalive()), "user_timeout": user_timeout(draw)},
    }
    if draw(st.booleans()):
        raw["kernel"]["sysctl"] = draw(kernel_block()).get("sysctl", {})
    client = raw["client"]
    if draw(st.integers(0, 2)) == 0:
        client["kernel"] = draw(kernel_block())
    if draw(st.integers(0, 2)) == 0:
        client["request_timeout"] = _seconds(draw, 1, 120)
    if draw(st.integers(0, 3)) == 0:
        client["ping_interval"] = _seconds(draw, 5, 600)
    if draw(st.integers(0, 3)) == 0:
        client["pool"] = {"idle_timeout": _seconds(draw, 5, 600) if draw(st.booleans()) else 0,
                          "max_lifetime": _seconds(draw, 60, 900) if draw(st.booleans()) else 0}
    raw["lb"] = draw(lb_chain(terminating_ok=True))
    upstream = raw["upstream"]
    if draw(st.integers(0, 2)) == 0:
        upstream["idle_timeout"] = _seconds(draw, 1, 600)
    if draw(st.integers(0, 3)) == 0:
        upstream["grpc"] = {"min_ping_interval": _seconds(draw, 5, 600), "max_ping_strikes": draw(st.integers(0, 3)),
                            "permit_without_calls": draw(st.booleans())}
    if draw(st.integers(0, 2)) == 0:
        upstream["kernel"] = draw(kernel_block())
    if draw(st.booleans()):
        listener: dict[str, Any] = {"keepalive": draw(keepalive()), "user_timeout": user_timeout(draw),
                                    "protocol": draw(st.sampled_from(["http", "http", "tcp_proxy"])),
                                    "idle_timeout": _seconds(draw, 5, 900),
                                    "route_timeout": draw(st.sampled_from([0, 1, 15, 60])),
                                    "stream_idle_timeout": draw(st.sampled_from([0, 2, 30, 300]))}
        envoy_up = {"keepalive": draw(keepalive()), "user_timeout": user_timeout(draw),
                    "idle_timeout": _seconds(draw, 1, 900), "retry_on_reset": draw(st.booleans())}
        raw["envoy"] = {"flavor": draw(st.sampled_from(["envoy", "istio"])), "listener": listener,
                        "upstream": envoy_up}
        if draw(st.integers(0, 2)) == 0:
            raw["envoy"]["kernel"] = draw(kernel_block())
        upstream["lb"] = draw(lb_chain(terminating_ok=False))
    return raw


@st.composite
def faulted_scenario(draw: Any) -> dict:
    """A ``scenario`` with one or two injected faults (a strategy of its own, so that ``scenario``
    keeps drawing the examples it always drew)."""
    raw = draw(scenario())
    raw["faults"] = draw(st.lists(fault(raw), min_size=1, max_size=2))
    return raw


def _chain(value: Any) -> list:
    return [] if value is None else (value if isinstance(value, list) else [value])


@st.composite
def fault(draw: Any, raw: dict) -> dict:
    """An injected fault on a leg or at a middlebox named once in the chains. An RST fault that can take
    handshake segments (syn, ack, all) lasts at most 2 s: one that resets a SYN or a handshake's ACK
    makes its slot reconnect at once, round trip after round trip."""
    devices = [m["profile"] for m in _chain(raw.get("lb")) + _chain(raw.get("upstream", {}).get("lb"))]
    legs = ["downstream"] + (["upstream"] if "envoy" in raw else []) + [d for d in devices if devices.count(d) == 1]
    action = draw(st.sampled_from(["drop", "drop", "rst"]))
    out: dict[str, Any] = {"at": _seconds(draw, 0, 900), "leg": draw(st.sampled_from(legs)),
                           "direction": draw(st.sampled_from(["to_server", "to_client", "both"])),
                           "packets": draw(st.sampled_from(["all", "syn", "fin", "data", "ack"])), "action": action}
    if action == "rst" and out["packets"] not in ("data", "fin"):
        out["for"] = draw(st.sampled_from([0.001, 0.5, 2]))
    elif draw(st.booleans()):
        out["for"] = _seconds(draw, 1, 900)
    return out

"""``inspect``'s verdict: a hop's keepalive against the middlebox on its own leg.

The verdict uses the sweep's predicted-margin formula (:func:`sim.report.verdict.predicted_margin_s`):
LB idle timeout − (I + worst timer-wheel lateness g(I) + 2 · hops · one-way delay), here with one
hop and, unless told otherwise, a 1 ms one-way delay. All times are in seconds. Listener hops
(and ``ss``/sysctl input) are judged against ``--lb``, the middlebox in front of Envoy; cluster
hops against ``--upstream-lb``, the middlebox between Envoy and its upstreams.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sim.config.durations import parse_duration
from sim.config.profiles import all_profiles, middlebox_spec
from sim.config.schema import KernelCfg, LbCfg, Scenario
from sim.errors import ConfigError
from sim.facts.kernel import MAX_TCP_KEEPIDLE
from sim.integrations.effective import Effective
from sim.report.verdict import predicted_margin_s, probe_lateness_max_s

#: Where a command-line option error points (there is no file or line).
CMDLINE = "<command line>"


@dataclass
class Settings:
    """What ``inspect`` assumes: the LB profiles (optional) on the client leg (``lb``) and on the
    upstream leg (``upstream_lb``), the kernel HZ and the one-way delay between the LB and the
    probing socket (seconds)."""

    lb: str | None = None
    hz: int = 250
    one_way_delay_s: float = 0.001
    upstream_lb: str | None = None

    def lb_timeout_s(self, lb: str | None = "") -> float | None:
        """The idle timeout in seconds of ``lb`` (default: ``--lb``); None without one."""
        name = self.lb if lb == "" else lb
        return middlebox_spec(LbCfg(profile=name)).idle_timeout_s if name else None

    def lb_for(self, side: str) -> str | None:
        """The profile a hop on ``side`` (listener | cluster) is judged against."""
        return self.upstream_lb if side == "cluster" else self.lb


def check_lb(name: str | None, flag: str = "--lb") -> None:
    """ConfigError for an unknown profile, with a did-you-mean and the allowed names."""
    if name is None:
        return
    profiles = all_profiles()
    if name not in profiles:
        close = [p for p in profiles if p.startswith(name)] or difflib.get_close_matches(name, list(profiles), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown profile {name!r}{hint}", file=CMDLINE, key=flag, allowed=", ".join(profiles))


@dataclass
class Verdict:
    """A hop's keepalive against one LB profile (seconds)."""

    profile: str
    lb_idle_timeout_s: float
    hz: int
    one_way_delay_s: float
    safe: bool
    reason: str
    margin_s: float | None = None  # predicted: with the worst timer-wheel lateness
    nominal_margin_s: float | None = None  # with exact timers
    lateness_s: float | None = None  # g(I) at this HZ
    other_hz: int | None = None
    other_margin_s: float | None = None
    other_lateness_s: float | None = None
    max_safe_idle_s: dict[int, int | None] = field(default_factory=dict)  # HZ -> largest safe TCP_KEEPIDLE


def margin_s(idle: int, lb: str, hz: int, one_way_delay_s: float, *, exact: bool = False,
             interval: int | None = None) -> float:
    """The sweep's predicted margin for a socket with TCP_KEEPIDLE ``idle`` (or the sysctl, above the
    setsockopt range) and TCP_KEEPINTVL ``interval`` (None: the default) facing ``lb`` one hop away."""
    ka: dict[str, Any] = {"enabled": True}
    sysctl: dict[str, int] = {}
    if idle <= MAX_TCP_KEEPIDLE:
        ka["idle"] = idle
    else:
        sysctl["net.ipv4.tcp_keepalive_time"] = idle
    if interval is not None:  # probes come every V when V >= I + RTT (R16): the margin depends on it
        if interval <= MAX_TCP_KEEPIDLE:
            ka["interval"] = interval
        else:
            sysctl["net.ipv4.tcp_keepalive_intvl"] = interval
    sc = Scenario.model_validate({
        "kernel": {"hz": hz, "timers": "exact" if exact else "wheel", "sysctl": sysctl},
        "network": {"one_way_delay": one_way_delay_s},
        "lb": {"profile": lb},
        "envoy": {"listener": {"keepalive": ka}},
    })
    m = predicted_margin_s(sc)
    assert m is not None  # the listener side has keepalive on by construction
    return m


@lru_cache(maxsize=64)  # a config_dump can hold dozens of hops judged against the same profile
def max_safe_idle(lb: str, hz: int, one_way_delay_s: float) -> int | None:
    """The largest TCP_KEEPIDLE whose predicted margin is >= 0 (the margin only falls as I grows:
    g(I) never shrinks), by bisection over 1..32767 s."""
    lo, hi = 1, MAX_TCP_KEEPIDLE
    if margin_s(lo, lb, hz, one_way_delay_s) < 0:
        return None
    if margin_s(hi, lb, hz, one_way_delay_s) >= 0:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if margin_s(mid, lb, hz, one_way_delay_s) >= 0:
            lo = mid
        else:
            hi = mid
    return lo


def verdict(eff: Effective, st: Settings, lb: str | None = "", broken: str | None = None) -> Verdict | None:
    """SAFE when keepalive is on and the predicted margin (timer-wheel lateness included) is >= 0.
    ``lb`` defaults to ``--lb``; None: no verdict. ``broken``: why the hop's connections fail."""
    lb = st.lb if lb == "" else lb
    if not lb:
        return None
    spec = middlebox_spec(LbCfg(profile=lb))
    other = 1000 if st.hz != 1000 else 250
    v = Verdict(lb, spec.idle_timeout_s, st.hz, st.one_way_delay_s, False, "", other_hz=other)
    v.max_safe_idle_s = {hz: max_safe_idle(lb, hz, st.one_way_delay_s) for hz in (st.hz, other)}
    if broken:
        v.reason = f"its connections fail: {broken}"
        return v
    if spec.refreshed_by != "any_packet":
        v.reason = f"{lb} is refreshed only by packets with payload: keepalive probes do not keep its flows"
        return v
    if not eff.enabled:
        v.reason = f"no keepalive: an idle connection is forgotten by {lb} after {spec.idle_timeout_s:g} s"
        return v
    kernel = KernelCfg(hz=st.hz, timers="wheel")
    v.lateness_s = probe_lateness_max_s(eff.idle, kernel)
    v.margin_s = margin_s(eff.idle, lb, st.hz, st.one_way_delay_s, interval=eff.interval)
    v.nominal_margin_s = margin_s(eff.idle, lb, st.hz, st.one_way_delay_s, exact=True, interval=eff.interval)
    v.other_lateness_s = probe_lateness_max_s(eff.idle, KernelCfg(hz=other, timers="wheel"))
    v.other_margin_s = margin_s(eff.idle, lb, other, st.one_way_delay_s, interval=eff.interval)
    v.safe = v.margin_s >= 0
    if v.safe:
        v.reason = "the first probe reaches the LB before it forgets the flow, even at the worst timer lateness"
    elif v.nominal_margin_s > 0:
        v.reason = (f"nominally {eff.idle} s < {spec.idle_timeout_s:g} s, but at HZ={st.hz} the keepalive timer can "
                    f"fire {v.lateness_s:g} s late and the flow is gone by then")
    else:
        v.reason = f"TCP_KEEPIDLE {eff.idle} s is not below the {spec.idle_timeout_s:g} s idle timeout"
    return v


def parse_one_way_delay(text: str) -> float:
    """``--one-way-delay`` in seconds (a duration such as ``1ms``); ConfigError if not > 0."""
    try:
        v = parse_duration(text)
    except ValueError as exc:
        problem, _, allowed = str(exc).partition(" (allowed: ")
        raise ConfigError(problem, file=CMDLINE, key="--one-way-delay", allowed=allowed.rstrip(")")) from None
    if v <= 0:
        raise ConfigError(f"{text!r} must be > 0", file=CMDLINE, key="--one-way-delay",
                          allowed="a duration such as 1ms")
    return v

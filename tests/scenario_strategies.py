"""Hypothesis strategies for small random scenarios (the property tests, issue 14 point 4).

Every strategy draws a raw config mapping that ``Scenario.model_validate`` accepts: valid by
construction, so a validation error is a failure of the test, not a discarded example. The runs are
small (1 to 3 connection slots, at most an hour simulated), with middlebox timeouts, keepalive
settings and request gaps of the same order, so that flows do expire within a run.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager

from hypothesis import strategies as st

from sim.config.profiles import all_profiles

PROFILES = all_profiles()
PASSTHROUGH = sorted(n for n, p in PROFILES.items() if p.kind == "passthrough")
TERMINATING = sorted(n for n, p in PROFILES.items() if p.kind == "terminating")
#: the idle timeouts drawn are at most this, so that flows expire within a short run
MAX_LB_TIMEOUT_S = 900


def _seconds(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Durations in whole milliseconds (configs are written in ms at the finest)."""
    return st.integers(int(lo * 1000), int(hi * 1000)).map(lambda ms: ms / 1000)


def _off_or(strategy: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    """Off (0) three times in four: each application timer closes connections, and with all of them
    on at once few flows would stay idle long enough to expire."""
    return st.one_of(st.just(0.0), st.just(0.0), st.just(0.0), strategy)


@st.composite
def middlebox(draw, name: str) -> dict:
    """One middlebox of profile ``name`` with an idle timeout inside its allowed range."""
    rng = PROFILES[name].range_s
    lo, hi = (rng if rng else (60.0, MAX_LB_TIMEOUT_S))
    lo = max(lo, 30.0)
    hi = max(lo, min(hi, MAX_LB_TIMEOUT_S))
    return {"profile": name, "idle_timeout": draw(st.integers(int(lo), int(hi)))}


@st.composite
def lb_chain(draw, *, terminating: bool) -> list[dict]:
    """One or two middleboxes; with ``terminating``, at most one of them a terminating LB."""
    names = draw(st.lists(st.sampled_from(PASSTHROUGH), min_size=1, max_size=2))
    if terminating and draw(st.booleans()):
        names[draw(st.integers(0, len(names) - 1))] = draw(st.sampled_from(TERMINATING))
    return [draw(middlebox(n)) for n in names]


def keepalive(scale_s: float, *, force_on: bool = False) -> st.SearchStrategy:
    """A keepalive setting: off, on with the host's sysctls, or explicit values with the idle time
    between 0.3 and 1.5 times ``scale_s`` (the middlebox timeout), so that both sides of the
    boundary come up."""
    explicit = st.fixed_dictionaries({
        "idle": st.floats(0.3, 1.5).map(lambda f: max(1, min(32767, round(f * scale_s)))),
        "interval": st.integers(1, 120), "count": st.integers(1, 9)})
    if force_on:
        return explicit
    return st.one_of(st.just("off"), st.just("on"), explicit)


def gap(scale_s: float, *, deterministic: bool) -> st.SearchStrategy[dict]:
    """``traffic.request_gap`` of the order of ``scale_s`` (0.2 to 3 times it): fixed only when
    ``deterministic``, else any distribution."""
    def around(lo: float, hi: float) -> st.SearchStrategy[float]:
        return st.floats(lo, hi).map(lambda f: round(max(1.0, f * scale_s), 3))

    fixed = around(0.2, 3).map(lambda s: {"fixed": s})
    if deterministic:
        return fixed
    return st.one_of(
        fixed,
        st.tuples(around(0.1, 3), around(0.1, 3)).map(lambda t: {"uniform": sorted(t)}),
        around(0.2, 2).map(lambda s: {"exponential": s}),
        st.tuples(around(0.1, 2), st.floats(0, 1.5)).map(lambda t: {"lognormal": {"median": t[0], "sigma": t[1]}}),
    )


def service(*, deterministic: bool) -> st.SearchStrategy[dict]:
    fixed = st.one_of(st.just({"fixed": 0}), _seconds(0, 120).map(lambda s: {"fixed": s}))
    if deterministic:
        return fixed
    return st.one_of(fixed, st.tuples(_seconds(0, 60), _seconds(0, 60)).map(lambda t: {"uniform": sorted(t)}))


@st.composite
def kernel(draw, *, exact: bool | None = None) -> dict:
    timers = draw(st.sampled_from(["exact", "wheel"])) if exact is None else ("exact" if exact else "wheel")
    out: dict = {"hz": draw(st.sampled_from([100, 250, 1000])), "timers": timers}
    sysctl = draw(st.fixed_dictionaries({}, optional={
        "net.ipv4.tcp_retries2": st.integers(1, 15),
        "net.ipv4.tcp_keepalive_time": st.integers(30, 900),
        "net.ipv4.tcp_keepalive_intvl": st.integers(1, 75),
        "net.ipv4.tcp_keepalive_probes": st.integers(1, 9)}))
    if sysctl:
        out["sysctl"] = sysctl
    return out


@st.composite
def scenarios(draw, *, deterministic: bool = False) -> dict:
    """A random small scenario. ``deterministic``: fixed gaps and service times, exact timers, no
    application timers (the traffic is then the same whatever the keepalive settings)."""
    envoy = draw(st.booleans())
    chain = draw(lb_chain(terminating=True)) if draw(st.integers(0, 3)) else None  # a middlebox 3 times in 4
    scale = min((m["idle_timeout"] for m in chain), default=600) if chain else 600
    raw: dict = {
        "name": "prop",
        "duration": draw(_seconds(600, 3600)),
        "connections": draw(st.integers(1, 3)),
        "seed": draw(st.integers(0, 2**32)),
        "kernel": draw(kernel(exact=True if deterministic else None)),
        "network": {"one_way_delay": draw(st.sampled_from([0.0005, 0.001, 0.005, 0.02]))},
        "traffic": {"ramp": draw(_seconds(0, 60)), "request_gap": draw(gap(scale, deterministic=deterministic)),
                    "service_time": draw(service(deterministic=deterministic))},
        "client": {"keepalive": draw(keepalive(scale))},
        "upstream": {"keepalive": draw(keepalive(scale))},
    }
    if chain:
        raw["lb"] = chain
    timeouts = _off_or(st.integers(1, 600))
    if not deterministic:
        raw["client"]["user_timeout"] = draw(timeouts)
        raw["upstream"]["user_timeout"] = draw(timeouts)
        raw["client"]["request_timeout"] = draw(_off_or(_seconds(1, 600)))
        raw["client"]["ping_interval"] = draw(_off_or(_seconds(5, 900)))
        raw["client"]["pool"] = {"idle_timeout": draw(_off_or(_seconds(5, 1800))),
                                 "max_lifetime": draw(_off_or(_seconds(60, 3600)))}
        raw["upstream"]["idle_timeout"] = draw(_off_or(_seconds(5, 900)))
        if draw(st.booleans()):
            raw["upstream"]["grpc"] = {"min_ping_interval": draw(_seconds(0, 600)),
                                       "max_ping_strikes": draw(st.integers(0, 3)),
                                       "permit_without_calls": draw(st.booleans())}
    if envoy:
        up_chain = draw(lb_chain(terminating=False)) if draw(st.booleans()) else None
        up_scale = min((m["idle_timeout"] for m in up_chain), default=scale) if up_chain else scale
        raw["envoy"] = _envoy(draw, deterministic, scale, up_scale)
        if up_chain:
            raw["upstream"]["lb"] = up_chain
            raw["upstream"]["keepalive"] = draw(keepalive(up_scale))
    return raw


def _envoy(draw, deterministic: bool, scale_s: float, upstream_scale_s: float) -> dict:
    listener: dict = {"keepalive": draw(keepalive(scale_s))}
    upstream: dict = {"keepalive": draw(keepalive(upstream_scale_s))}
    if deterministic:  # Envoy's request and idle timers off: only the keepalives differ
        listener.update(idle_timeout=0, route_timeout=0, stream_idle_timeout=0)
        upstream["idle_timeout"] = 0
    else:
        listener.update(
            protocol=draw(st.sampled_from(["http", "tcp_proxy"])),
            idle_timeout=draw(_off_or(_seconds(5, 3600))),
            route_timeout=draw(_off_or(_seconds(1, 120))),
            stream_idle_timeout=draw(_off_or(_seconds(1, 600))),
            user_timeout=draw(_off_or(st.integers(1, 600))))
        upstream.update(idle_timeout=draw(_off_or(_seconds(5, 3600))), retry_on_reset=draw(st.booleans()),
                        user_timeout=draw(_off_or(st.integers(1, 600))))
    return {"flavor": draw(st.sampled_from(["envoy", "istio"])), "listener": listener, "upstream": upstream}


class RunawayRun(AssertionError):
    """A run grew past the memory or time a small scenario needs: a model defect (connections that
    multiply, an event loop that never ends), reported as a failure instead of exhausting the machine."""


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@contextmanager
def bounded(max_extra_mib: float = 1024, max_s: float = 120):
    """Run the body with a guard that raises RunawayRun once the process holds ``max_extra_mib``
    more resident memory than at the start, or after ``max_s`` seconds. Not a timing claim: small
    scenarios take milliseconds; the limits only stop a run that would never end."""
    base = _rss_mib()
    start = time.monotonic()

    def check(signum, frame) -> None:
        if _rss_mib() - base > max_extra_mib:
            raise RunawayRun(f"the run holds more than {max_extra_mib:g} MiB")
        if time.monotonic() - start > max_s:
            raise RunawayRun(f"the run takes more than {max_s:g} s")

    previous = signal.signal(signal.SIGALRM, check)
    signal.setitimer(signal.ITIMER_REAL, 0.1, 0.1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

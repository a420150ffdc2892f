"""A storm and a reconnect policy checked against the rest of the scenario and resolved into the
world spec (sim.spec.storm)."""

from __future__ import annotations

from sim.config.durations import parse_duration
from sim.config.profiles import all_profiles
from sim.config.schema import Scenario, lb_list
from sim.config.storm import ReconnectCfg
from sim.spec import ReconnectSpec, StormSpec

#: (config path of the key, the problem, what is allowed)
Problem = tuple[tuple, str, str]


def _devices(sc: Scenario) -> list[tuple[str, int, str]]:
    """(leg, index in that leg, profile name) of every middlebox, downstream first."""
    return ([("downstream", i, c.profile) for i, c in enumerate(lb_list(sc.lb))]
            + [("upstream", i, c.profile) for i, c in enumerate(lb_list(sc.upstream.lb))])


def _device(sc: Scenario) -> tuple[tuple[str, int, str] | None, Problem | None]:
    storm = sc.storm
    assert storm is not None
    devices = _devices(sc)
    names = [d[2] for d in devices]
    unique = [n for n in dict.fromkeys(names) if names.count(n) == 1]
    if storm.device is None:
        if not devices:
            return None, (("storm", "kind"), f"a {storm.kind} storm needs a middlebox, and the config has none",
                          "rollout, or add lb / upstream.lb")
        dev = devices[0]
    elif storm.device in unique:
        dev = devices[names.index(storm.device)]
    else:
        what = ("names several middleboxes" if storm.device in names else "is no middlebox of this config")
        return None, (("storm", "device"), f"{storm.device!r} {what}", ", ".join(unique) or "none")
    if all_profiles()[dev[2]].kind == "terminating":
        return None, (("storm", "device" if storm.device else "kind"),
                      f"{dev[2]} is a terminating proxy, not a flow table", "a pass-through middlebox")
    return dev, None


def storm_problem(sc: Scenario) -> Problem | None:
    """What is wrong with ``sc.storm`` in this scenario, or None."""
    storm = sc.storm
    if storm is None:
        return None
    if storm.kind == "rollout":
        if sc.envoy is None:
            return (("storm", "kind"), "a rollout drains the gateway (Envoy), and the config has no envoy block",
                    "deregister, drop_all, or add envoy")
        return None
    dev, problem = _device(sc)
    if problem is not None or storm.kind != "deregister":
        return problem
    assert dev is not None
    if storm.deregistration_delay is None and all_profiles()[dev[2]].deregistration_delay is None:
        return (("storm", "kind"), f"{dev[2]} publishes no deregistration delay",
                "storm.deregistration_delay: a duration, e.g. 300s")
    return None


def storm_spec(sc: Scenario) -> StormSpec | None:
    """The storm of a checked scenario (storm_problem is None), or None."""
    storm = sc.storm
    if storm is None:
        return None
    if storm.kind == "rollout":
        envoy = sc.envoy
        assert envoy is not None
        # Envoy drains an HTTP/2 downstream connection with GOAWAY and an HTTP/1.1 one by closing it
        # (lb-catalog.md 2.12). The model's HTTP/2 clients are those that send PINGs (gRPC-like);
        # a tcp_proxy listener has no HTTP to speak.
        h2 = envoy.listener.protocol == "http" and (sc.client.ping_interval > 0 or sc.upstream.grpc is not None)
        return StormSpec("rollout", storm.at, storm.window, goaway=h2)
    dev, _ = _device(sc)
    assert dev is not None
    start = storm.at
    if storm.kind == "deregister":
        prof = all_profiles()[dev[2]].deregistration_delay
        delay = storm.deregistration_delay
        start += delay if delay is not None else parse_duration(prof)
    return StormSpec(storm.kind, start, leg=dev[0], device=dev[1])


def reconnect_spec(cfg: ReconnectCfg) -> ReconnectSpec:
    """The client's reconnect policy; backoff's jitter defaults to ``full`` (AWS's recommendation)."""
    if cfg.policy != "backoff":
        return ReconnectSpec(cfg.policy)
    return ReconnectSpec("backoff", cfg.base_s, cfg.cap_s, cfg.jitter or "full")

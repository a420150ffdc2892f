"""The sweep block: its axes, the keys that cannot be swept, and the keys that are conditions, not settings.

A grid's knobs are what the recommendation chooses among, so a knob must be something a user sets
(keepalive, timeouts, sysctls, Envoy and server settings). The environment and the workload (fleet
size, traffic, delays, the device's behaviour, the kernel build) are conditions the choice must
survive: they belong under ``sweep.conditions``. ``CONDITION_KEYS`` lists them, with the reason,
and a knob among them gets a one-line warning when the config loads.
"""

from __future__ import annotations

from typing import Any

from sim.config.yamlio import dotted
from sim.errors import ConfigError

#: Top-level keys that cannot be a sweep axis (knob or condition), and why: refused with one line.
NOT_SWEEPABLE = {
    "sweep": "the sweep block cannot sweep itself",
    "replications": "every grid point runs the same replications with the same seeds; set it once "
                    "(replications: N, or --set replications=N)",
    "name": "the name labels the whole results folder; use one config per name",
}

#: Keys (and the keys below them) that describe the environment or the workload, not a setting a user
#: chooses: swept as a knob, the tool would "recommend" one of their values. Sweep them under
#: ``sweep.conditions``. The reason is part of the warning.
CONDITION_KEYS = {
    "connections": "fleet size is load, not a setting",
    "duration": "simulated time per replication is not a setting",
    "seed": "the random seed is not a setting (replications vary it)",
    "traffic": "the request pattern is workload, not a setting",
    "network": "path delays are the environment, not a setting",
    "envoy.flavor": "the product (Envoy or Istio) is not a tuning setting",
    "faults": "an injected fault is the environment, not a setting",
    "storm": "a storm (rollout, deregistration, drop of every flow) is an event, not a setting",
    **{f"{host}kernel.hz": "the kernel's timer rate is fixed by its build"
       for host in ("", "client.", "envoy.", "upstream.")},
    **{f"{host}kernel.timers": "timer semantics (wheel or exact) are a modelling choice, not a setting"
       for host in ("", "client.", "envoy.", "upstream.")},
    **{f"{leg}.{key}": f"the device's {what} is its behaviour, not a setting (its idle_timeout is one)"
       for leg in ("lb", "upstream.lb")
       for key, what in (("profile", "make"), ("late_packet", "late-packet policy"),
                         ("on_expiry", "expiry policy"), ("refreshed_by", "refresh rule"))},
}


def condition_reason(key: str) -> str | None:
    """Why ``key`` is a condition rather than a setting, or None if it is a setting."""
    for prefix, reason in CONDITION_KEYS.items():
        if key == prefix or key.startswith(prefix + "."):
            return reason
    return None


def knob_warnings(knobs: dict[str, list], where: Any) -> list[str]:
    """One line per knob that is a condition: ``FILE:LINE: sweep.KEY: ...``."""
    out = []
    for key in knobs:
        reason = condition_reason(key)
        if reason is None:
            continue
        at = where.at(("sweep", key))
        place = at["file"] + (f":{at['line']}" if at["line"] is not None else "")
        out.append(f"{place}: sweep.{key}: {reason}; as a knob it would be recommended like a setting "
                   f"(put it under sweep.conditions)")
    return out


def sweep_axes(sweep: Any, file: str, lines: Any, where: Any = None) -> tuple[dict[str, list], dict[str, list]]:
    """(knobs, conditions): dotted key → list of values. ``where`` (a validate.Source) places errors;
    without it they are placed with ``file`` and ``lines``."""
    if where is None:
        from sim.config.validate import Source

        where = Source(file, lines)
    if sweep in (None, {}):
        return {}, {}
    if not isinstance(sweep, dict):
        raise ConfigError("sweep must map dotted keys to lists", **where.at(("sweep",)), key="sweep")
    knobs: dict[str, list] = {}
    conds: dict[str, list] = {}
    for key, values in sweep.items():
        if key == "conditions":
            if not isinstance(values, dict):
                raise ConfigError("conditions must map dotted keys to lists", **where.at(("sweep", "conditions")),
                                  key="sweep.conditions")
            for ckey, cvals in values.items():
                conds[ckey] = _axis(ckey, cvals, ("sweep", "conditions", ckey), where)
                if ckey in sweep:
                    raise ConfigError("is both a knob and a condition", **where.at(("sweep", "conditions", ckey)),
                                      key=f"sweep.conditions.{ckey}", allowed="each key on one axis")
        else:
            knobs[key] = _axis(key, values, ("sweep", key), where)
    return knobs, conds


def _axis(key: Any, values: Any, here: tuple, where: Any) -> list:
    if not isinstance(values, list) or not values:
        raise ConfigError("a sweep axis is a non-empty list of values", **where.at(here), key=dotted(here))
    top = str(key).split(".")[0]
    if top in NOT_SWEEPABLE:
        allowed = ", ".join(k for k in NOT_SWEEPABLE)
        raise ConfigError(f"cannot be swept: {NOT_SWEEPABLE[top]}", **where.at(here), key=dotted(here),
                          allowed=f"any key except {allowed}")
    return values

"""Envoy listener ``socket_options`` (EnvoyFilter / config_dump form) read into ``keepalive`` (DESIGN §4).

``envoy.listener.keepalive`` and ``envoy.listener.socket_options`` are two spellings of one setting.
The options are decoded when the file loads (and again when a ``--set`` or sweep value replaces them)
and removed from the raw mapping: what remains is the ``keepalive`` spelling, on which later
``--set``/sweep values act and win. The entries themselves are returned to the caller, which keeps
them outside the raw mapping (``Loaded.listener_socket_options``).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from sim.config.durations import parse_duration, short_repr
from sim.config.yamlio import dotted
from sim.errors import ConfigError
from sim.facts.kernel import USER_TIMEOUT_MAX_MS, SockOptError, check_keepalive_option
from sim.facts.sockopts import MODELLED, option_name

BASE = ("envoy", "listener", "socket_options")
_KEEPALIVE = ("envoy", "listener", "keepalive")
_FIELDS = {"TCP_KEEPIDLE": "idle", "TCP_KEEPINTVL": "interval", "TCP_KEEPCNT": "count"}


class Locator(Protocol):
    """Where a key was written (sim.config.validate.Source)."""

    def at(self, loc: tuple) -> dict[str, Any]: ...


def decode_listener_options(raw: dict, where: Locator) -> list[dict] | None:
    """Replace ``envoy.listener.socket_options`` in ``raw`` by ``keepalive`` (and ``user_timeout``).

    Returns the decoded entries (level, name, int_value as integers), or None when the listener
    has no ``socket_options``. Raises ConfigError for anything the kernel or the model would not take,
    and when the file's own ``keepalive`` disagrees.
    """
    listener = raw.get("envoy", {}).get("listener") if isinstance(raw.get("envoy"), dict) else None
    if not isinstance(listener, dict) or "socket_options" not in listener:
        return None
    opts = listener["socket_options"]
    if opts is None:
        listener.pop("socket_options")
        return None
    if not isinstance(opts, list):
        raise ConfigError("must be a list of {level, name, int_value}", **where.at(BASE), key=dotted(BASE))
    decoded: dict = {}
    entries: list[dict] = []
    user_timeout = None
    for i, opt in enumerate(opts):
        level, name, value = _entry(opt, BASE + (i,), where)
        entries.append({"level": level, "name": name, "int_value": value})
        known = MODELLED[(level, name)]
        if known == "SO_KEEPALIVE":
            decoded["enabled"] = value != 0
        elif known == "TCP_USER_TIMEOUT":
            user_timeout = value / 1000.0  # the kernel takes ms here
        else:
            decoded[_FIELDS[known]] = value
    if "enabled" not in decoded:
        decoded["enabled"] = False  # TCP_KEEP* without SO_KEEPALIVE: stored, never used
    if "keepalive" in listener and canon_keepalive(listener["keepalive"]) != canon_keepalive(decoded):
        raise ConfigError(f"disagrees with socket_options ({canon_keepalive(decoded)})", **where.at(_KEEPALIVE),
                          key=dotted(_KEEPALIVE), allowed="one spelling, or two that agree")
    if user_timeout is not None:
        listener["user_timeout"] = user_timeout
    listener["keepalive"] = decoded if decoded["enabled"] else False
    del listener["socket_options"]
    return entries


def _entry(opt: Any, here: tuple, where: Locator) -> tuple[int, int, int]:
    """(level, name, int_value) of one entry, checked against what is modelled and what the kernel takes."""
    if not isinstance(opt, dict):
        raise ConfigError("each option is a mapping {level, name, int_value}", **where.at(here), key=dotted(here))
    extra = sorted(str(k) for k in opt if k not in ("level", "name", "int_value", "state", "description"))
    if extra:
        raise ConfigError(f"unknown key {extra[0]!r}", **where.at(here + (extra[0],)), key=dotted(here + (extra[0],)),
                          allowed="level, name, int_value, state, description")
    state = opt.get("state")
    if state is not None and state not in ("STATE_PREBIND", "STATE_BOUND", "STATE_LISTENING"):
        raise ConfigError(f"{state!r} is not a socket state", **where.at(here + ("state",)),
                          key=dotted(here + ("state",)), allowed="STATE_PREBIND, STATE_BOUND, STATE_LISTENING")
    nums = []
    for k in ("level", "name", "int_value"):
        if k not in opt:
            raise ConfigError(f"missing {k}", **where.at(here), key=dotted(here),
                              allowed="level, name, int_value, state")
        v = opt[k]
        if isinstance(v, str) and re.fullmatch(r"-?[0-9]{1,19}", v.strip()):
            v = int(v)  # config_dump spells numbers as strings
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{short_repr(v)} is not an integer", **where.at(here + (k,)), key=dotted(here + (k,)),
                              allowed="integers: whole seconds for TCP_KEEPIDLE/INTVL, ms for TCP_USER_TIMEOUT")
        nums.append(v)
    level, name, value = nums
    known = MODELLED.get((level, name))
    if known is None:
        raise ConfigError(f"{option_name(level, name)} (level {level}, name {name}) is not modelled",
                          **where.at(here), key=dotted(here),
                          allowed="SO_KEEPALIVE 1/9, TCP_KEEPIDLE 6/4, TCP_KEEPINTVL 6/5, TCP_KEEPCNT 6/6, "
                                  "TCP_USER_TIMEOUT 6/18")
    iv = here + ("int_value",)
    if known == "TCP_USER_TIMEOUT" and value > USER_TIMEOUT_MAX_MS:  # the kernel reads a C int
        raise ConfigError(f"TCP_USER_TIMEOUT {short_repr(value)} ms is too large", **where.at(iv), key=dotted(iv),
                          allowed=f"0..{USER_TIMEOUT_MAX_MS} ms")
    if known != "SO_KEEPALIVE":
        try:
            check_keepalive_option(known, value)
        except SockOptError as exc:
            raise ConfigError(f"{known} {short_repr(value)} is rejected by the kernel with EINVAL", **where.at(iv),
                              key=dotted(iv), allowed=exc.allowed) from None
    return level, name, value


def canon_keepalive(v: Any) -> str:
    """One spelling of a keepalive setting, to compare the two spellings of DESIGN §4."""
    if isinstance(v, str):
        v = v.lower()
    if v in (False, None, "off") or (isinstance(v, dict) and v.get("enabled") is False):
        return "off"
    if v in (True, "on"):
        return "on"
    if isinstance(v, dict):
        def num(key: str, alias: str) -> Any:
            x = v.get(key, v.get(alias))
            try:
                return None if x is None else parse_duration(x)
            except ValueError:
                return x
        return f"idle={num('idle', 'time')} interval={num('interval', 'interval')} count={num('count', 'probes')}"
    return repr(v)

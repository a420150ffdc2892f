"""Load a scenario: YAML with line numbers, ``--set`` overrides, validation, one-line errors."""

from __future__ import annotations

import copy
import difflib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sim.config.profiles import all_profiles
from sim.config.schema import Scenario, lb_list
from sim.config.sockopts import MODELLED, option_name
from sim.config.yamlio import Lines, read_yaml
from sim.config.yamlio import dotted as _dotted
from sim.errors import ConfigError
from sim.model.kernel import SockOptError, check_keepalive_option


@dataclass
class Loaded:
    """A validated scenario, the raw mapping it came from and where each key was written."""

    scenario: Scenario
    raw: dict
    file: str
    lines: Lines = field(default_factory=dict)
    sets: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- dotted keys
def split_key(key: str) -> tuple:
    """``kernel.sysctl.net.ipv4.tcp_retries2`` → ('kernel', 'sysctl', 'net.ipv4.tcp_retries2')."""
    parts = key.split(".")
    if parts[0] == "sweep" and len(parts) > 1:  # the sweep block's own keys are dotted keys
        if parts[1] == "conditions" and len(parts) > 2:
            return ("sweep", "conditions", ".".join(parts[2:]))
        return ("sweep", ".".join(parts[1:]))
    for i, p in enumerate(parts):
        if p == "sysctl" and i + 1 < len(parts):
            return tuple(parts[: i + 1]) + (".".join(parts[i + 1:]),)
    return tuple(parts)


def set_path(data: dict, path: tuple, value: Any) -> None:
    """Set a nested key; a scalar on the way (``keepalive: off``) becomes a mapping."""
    node = data
    for p in path[:-1]:
        nxt = node.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[path[-1]] = value


def get_path(data: Any, path: tuple) -> Any:
    for p in path:
        if not isinstance(data, dict) or p not in data:
            return None
        data = data[p]
    return data


def parse_set(item: str) -> tuple[tuple, Any]:
    """``KEY=VALUE`` with VALUE read as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE", allowed="e.g. --set lb.idle_timeout=350s")
    key, _, text = item.partition("=")
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {item!r}: empty key")
    value, _ = read_yaml(text, f"--set {key}")
    return split_key(key), value


# ----------------------------------------------------------------------------- socket_options
def _listener_keepalive_from_options(raw: dict, file: str, lines: Lines) -> None:
    """Read EnvoyFilter ``socket_options`` into ``envoy.listener.keepalive`` (DESIGN §4)."""
    listener = get_path(raw, ("envoy", "listener"))
    if not isinstance(listener, dict) or not listener.get("socket_options"):
        return
    opts = listener["socket_options"]
    base = ("envoy", "listener", "socket_options")
    if not isinstance(opts, list):
        raise ConfigError("must be a list of {level, name, int_value}", file=file,
                          line=lines.get(base), key=_dotted(base))
    decoded: dict = {}
    user_timeout = None
    for i, opt in enumerate(opts):
        where = base + (i,)
        if not isinstance(opt, dict):
            raise ConfigError("each option is a mapping {level, name, int_value}", file=file,
                              line=lines.get(where), key=_dotted(where))
        extra = sorted(set(opt) - {"level", "name", "int_value", "state", "description"})
        if extra:
            raise ConfigError(f"unknown key {extra[0]!r}", file=file, line=lines.get(where + (extra[0],)),
                              key=_dotted(where + (extra[0],)), allowed="level, name, int_value, state")
        state = opt.get("state")
        if state is not None and state not in ("STATE_PREBIND", "STATE_BOUND", "STATE_LISTENING"):
            raise ConfigError(f"{state!r} is not a socket state", file=file, line=lines.get(where + ("state",)),
                              key=_dotted(where + ("state",)), allowed="STATE_PREBIND, STATE_BOUND, STATE_LISTENING")
        nums = []
        for k in ("level", "name", "int_value"):
            if k not in opt:
                raise ConfigError(f"missing {k}", file=file, line=lines.get(where), key=_dotted(where),
                                  allowed="level, name, int_value, state")
            v = opt[k]
            if isinstance(v, str) and re.fullmatch(r"-?[0-9]+", v.strip()):
                v = int(v)  # config_dump spells numbers as strings
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"{v!r} is not an integer", file=file, line=lines.get(where + (k,)),
                                  key=_dotted(where + (k,)),
                                  allowed="integers: whole seconds for TCP_KEEPIDLE/INTVL, ms for TCP_USER_TIMEOUT")
            nums.append(v)
        level, name, value = nums
        known = MODELLED.get((level, name))
        if known is None:
            raise ConfigError(f"{option_name(level, name)} (level {level}, name {name}) is not modelled",
                              file=file, line=lines.get(where), key=_dotted(where),
                              allowed="SO_KEEPALIVE 1/9, TCP_KEEPIDLE 6/4, TCP_KEEPINTVL 6/5, TCP_KEEPCNT 6/6, "
                                      "TCP_USER_TIMEOUT 6/18")
        if known != "SO_KEEPALIVE":
            try:
                check_keepalive_option(known, value)
            except SockOptError as exc:
                raise ConfigError(f"{known} {value} is rejected by the kernel with EINVAL", file=file,
                                  line=lines.get(where + ("int_value",)), key=_dotted(where + ("int_value",)),
                                  allowed=exc.allowed) from None
        if known == "SO_KEEPALIVE":
            decoded["enabled"] = value != 0
        elif known == "TCP_USER_TIMEOUT":
            user_timeout = value / 1000.0  # the kernel takes ms here
        else:
            decoded[{"TCP_KEEPIDLE": "idle", "TCP_KEEPINTVL": "interval", "TCP_KEEPCNT": "count"}[known]] = value
    if "enabled" not in decoded:
        decoded["enabled"] = False  # TCP_KEEP* without SO_KEEPALIVE: stored, never used
    if "keepalive" in listener:
        other = listener["keepalive"]
        if _canon_keepalive(other) != _canon_keepalive(decoded):
            kp = ("envoy", "listener", "keepalive")
            raise ConfigError(f"disagrees with socket_options ({_canon_keepalive(decoded)})", file=file,
                              line=lines.get(kp), key=_dotted(kp),
                              allowed="one spelling, or two that agree")
    if user_timeout is not None:
        listener["user_timeout"] = user_timeout
    listener["keepalive"] = decoded if decoded["enabled"] else False
    listener["_socket_options"] = listener.pop("socket_options")


def _canon_keepalive(v: Any) -> str:
    if v in (False, None, "off") or (isinstance(v, dict) and v.get("enabled") is False):
        return "off"
    if v in (True, "on"):
        return "on"
    if isinstance(v, dict):
        from sim.config.durations import parse_duration

        def num(key, alias):
            x = v.get(key, v.get(alias))
            try:
                return None if x is None else parse_duration(x)
            except ValueError:
                return x
        return f"idle={num('idle', 'time')} interval={num('interval', 'interval')} count={num('count', 'probes')}"
    return repr(v)


# ----------------------------------------------------------------------------- validation
def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of ``loc``."""
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return None
        f = cur.model_fields.get(part)
        if f is None:
            return None
        cur = _first_model(f.annotation)
        if cur is None:
            return None
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _first_model(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in get_args(tp):
        found = _first_model(arg)
        if found is not None:
            return found
    if get_origin(tp) is None and hasattr(tp, "__metadata__"):
        return _first_model(tp.__origin__)
    return None


def _line_for(lines: Lines, loc: tuple) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _union_tags() -> set[str]:
    from sim.config import schema

    names = {n for n, v in vars(schema).items() if isinstance(v, type) and issubclass(v, BaseModel)}
    return names | {"str", "int", "float", "bool", "list", "dict", "tuple"}


_TAGS = _union_tags()


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union-branch tags (``LbCfg``, ``list[LbCfg]``, ``function-before[...]``)."""
    out = []
    for p in loc:
        if isinstance(p, str) and (p in _TAGS or p.startswith(("function-", "literal[", "list[", "tuple["))):
            continue
        out.append(p)
    return tuple(out)


def _from_validation(exc: ValidationError, file: str, lines: Lines) -> ConfigError:
    errs = exc.errors(include_url=False)
    # prefer the most specific error (deepest location) for unions
    err = max(errs, key=lambda e: (e["type"] == "extra_forbidden", len(_clean_loc(e["loc"]))))
    loc = _clean_loc(err["loc"])
    key = _dotted(loc)
    line = _line_for(lines, loc)
    etype = err["type"]
    msg = err["msg"]
    if etype == "extra_forbidden":
        owner = _model_at(Scenario, loc)
        names = [n for n in owner.model_fields] if owner else []
        names = [n for n in names if n != "enabled"]
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", names, n=1)
        hint = f"unknown key; did you mean '{close[0]}'?" if close else "unknown key"
        return ConfigError(hint, file=file, line=line, key=key, allowed=", ".join(names))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if "(allowed:" in msg:
        problem, _, allowed = msg.partition(" (allowed: ")
        return ConfigError(problem, file=file, line=line, key=key, allowed=allowed.rstrip(")"))
    allowed = ""
    if etype == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        msg = f"{err.get('input')!r} is not a valid choice"
    elif etype in ("int_parsing", "int_type", "int_from_float"):
        msg, allowed = f"{err.get('input')!r} is not an integer", "an integer"
    elif etype in ("greater_than_equal", "greater_than"):
        msg = f"{err.get('input')!r} is too small"
        allowed = f">= {err['ctx'].get('ge', err['ctx'].get('gt'))}"
    elif etype == "missing":
        msg = "required key is missing"
    elif etype in ("model_type", "dict_type", "model_attributes_type"):
        msg = f"{err.get('input')!r} should be a mapping"
    return ConfigError(msg, file=file, line=line, key=key, allowed=allowed)


def _validate(raw: dict, file: str, lines: Lines) -> Scenario:
    try:
        scenario = Scenario.model_validate(_strip_private(raw))
    except ValidationError as exc:
        raise _from_validation(exc, file, lines) from None
    if scenario.upstream.lb is not None and scenario.envoy is None:
        raise ConfigError("a middlebox between Envoy and the upstream needs an envoy block", file=file,
                          line=_line_for(lines, ("upstream", "lb")), key="upstream.lb",
                          allowed="put the middlebox in lb when the client talks to the upstream directly")
    profiles = all_profiles()
    for leg, chain in ((("lb",), scenario.lb), (("upstream", "lb"), scenario.upstream.lb)):
        terminating = [c.profile for c in lb_list(chain) if c.profile in profiles
                       and profiles[c.profile].kind == "terminating"]
        if len(terminating) > 1 or (terminating and leg != ("lb",)):
            raise ConfigError(f"terminating LBs here: {', '.join(terminating)}", file=file,
                              line=_line_for(lines, leg), key=_dotted(leg),
                              allowed="at most one terminating LB (aws-nlb-tls, aws-alb, proxy), on the client's "
                                      "leg `lb`; pass-through devices may stand before and after it")
    for leg, chain in ((("lb",), scenario.lb), (("upstream", "lb"), scenario.upstream.lb)):
        for i, cfg in enumerate(lb_list(chain)):
            path = leg + ((i,) if isinstance(chain, list) else ())
            if cfg.profile not in profiles:
                close = [p for p in profiles if p.startswith(cfg.profile)] or difflib.get_close_matches(
                    cfg.profile, list(profiles), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"unknown profile {cfg.profile!r}{hint}", file=file,
                                  line=_line_for(lines, path + ("profile",)), key=_dotted(path + ("profile",)),
                                  allowed=", ".join(profiles))
            rng = profiles[cfg.profile].range_s
            if cfg.idle_timeout is not None and rng and not rng[0] <= cfg.idle_timeout <= rng[1]:
                raise ConfigError(f"{cfg.idle_timeout:g} s is outside what {cfg.profile} accepts", file=file,
                                  line=_line_for(lines, path + ("idle_timeout",)),
                                  key=_dotted(path + ("idle_timeout",)),
                                  allowed=f"{rng[0]:g}..{rng[1]:g} s")
    return scenario


def _strip_private(raw: Any) -> Any:
    if isinstance(raw, dict):
        return {k: _strip_private(v) for k, v in raw.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(raw, list):
        return [_strip_private(v) for v in raw]
    return raw


def _normalise_lb(raw: dict) -> None:
    """``lb: aws-nlb-tcp`` → ``lb: {profile: aws-nlb-tcp}`` so that fields can be overridden."""
    for path in (("lb",), ("upstream", "lb")):
        value = get_path(raw, path)
        if isinstance(value, str):
            set_path(raw, path, {"profile": value})


def apply_value(raw: dict, path: tuple, value: Any) -> None:
    """Apply one override (a --set or a sweep value) to a raw config, socket_options rules included."""
    _normalise_lb(raw)
    set_path(raw, path, copy.deepcopy(value))
    _normalise_lb(raw)
    if path[:3] == ("envoy", "listener", "socket_options"):
        raw["envoy"]["listener"].pop("keepalive", None)  # the new value wins over the file's
        _listener_keepalive_from_options(raw, "--set", {})
    elif path[:3] == ("envoy", "listener", "keepalive"):
        listener = raw["envoy"]["listener"]
        listener.pop("_socket_options", None)


# ----------------------------------------------------------------------------- sweep block
def sweep_axes(sweep: Any, file: str, lines: Lines) -> tuple[dict[str, list], dict[str, list]]:
    """(knobs, conditions): dotted key → list of values."""
    if sweep in (None, {}):
        return {}, {}
    if not isinstance(sweep, dict):
        raise ConfigError("sweep must map dotted keys to lists", file=file, line=lines.get(("sweep",)), key="sweep")
    knobs: dict[str, list] = {}
    conds: dict[str, list] = {}
    for key, values in sweep.items():
        if key == "conditions":
            if not isinstance(values, dict):
                raise ConfigError("conditions must map dotted keys to lists", file=file,
                                  line=lines.get(("sweep", "conditions")), key="sweep.conditions")
            for ckey, cvals in values.items():
                conds[ckey] = _axis(ckey, cvals, ("sweep", "conditions", ckey), file, lines)
                if ckey in sweep:
                    raise ConfigError("is both a knob and a condition", file=file,
                                      line=lines.get(("sweep", "conditions", ckey)),
                                      key=f"sweep.conditions.{ckey}", allowed="each key on one axis")
        else:
            knobs[key] = _axis(key, values, ("sweep", key), file, lines)
    return knobs, conds


def _axis(key: str, values: Any, where: tuple, file: str, lines: Lines) -> list:
    if not isinstance(values, list) or not values:
        raise ConfigError("a sweep axis is a non-empty list of values", file=file, line=lines.get(where),
                          key=_dotted(where))
    if split_key(key)[0] == "sweep":
        raise ConfigError("cannot sweep the sweep block", file=file, line=lines.get(where), key=_dotted(where))
    return values


# ----------------------------------------------------------------------------- entry point
def load_config(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> Loaded:
    """Read, override, validate (the sweep block included). Raises ConfigError."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=file) from None
    except UnicodeDecodeError as exc:
        data = Path(path).read_bytes()
        line_no = data[: exc.start].count(b"\n") + 1
        src = data.split(b"\n")[line_no - 1].decode("utf-8", "replace")
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*:", src)
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=file, line=line_no,
                          key=m.group(1) if m else "", allowed="UTF-8 encoded YAML") from None
    raw, lines = read_yaml(text, file)
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping", file=file, line=1)
    _normalise_lb(raw)
    _listener_keepalive_from_options(raw, file, lines)
    for item in sets:
        key_path, value = parse_set(item)
        apply_value(raw, key_path, value)
        lines[key_path] = None  # type: ignore[assignment]
    scenario = _validate(raw, file, lines)
    knobs, conds = sweep_axes(raw.get("sweep"), file, lines)
    for key, values in itertools.chain(knobs.items(), conds.items()):
        for i, value in enumerate(values):
            trial = copy.deepcopy(raw)
            trial.pop("sweep", None)
            try:
                apply_value(trial, split_key(key), value)
                _validate(trial, file, lines)
            except ConfigError as exc:
                where = ("sweep", "conditions", key) if key in conds else ("sweep", key)
                inner = f"{exc.key}: " if exc.key and exc.key != key else ""
                raise ConfigError(f"value {value!r}: {inner}{exc.problem}", file=file, line=lines.get(where),
                                  key=f"{_dotted(where)}[{i}]", allowed=exc.allowed) from None
    return Loaded(scenario=scenario, raw=raw, file=file, lines=lines, sets=list(sets))


def with_values(loaded: Loaded, values: dict[str, Any]) -> Scenario:
    """The scenario with sweep values applied (keys dotted, as in the sweep block)."""
    raw = copy.deepcopy(loaded.raw)
    raw.pop("sweep", None)
    for key, value in values.items():
        apply_value(raw, split_key(key), value)
    return _validate(raw, loaded.file, loaded.lines)


def load_config_text(text: str, file: str = "<stdin>", sets: list[str] | tuple[str, ...] = ()) -> Loaded:
    """``load_config`` for a config given as text (``run -`` reads it from stdin); errors and
    ``Loaded.file`` name ``file``. The text goes through a private temporary file so that both entry
    points share every step."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sim-config-") as tmp:
        path = Path(tmp) / "config.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            loaded = load_config(path, sets)
        except ConfigError as exc:
            where = file if exc.file == str(path) else exc.file
            raise ConfigError(exc.problem, file=where, line=exc.line, key=exc.key, allowed=exc.allowed) from None
    loaded.file = file
    return loaded

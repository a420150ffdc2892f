"""Validation of a raw config against the schema, with every error as one line naming file, line and key."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError

from sim.config.classes import classes_problem
from sim.config.durations import short_repr
from sim.config.ports import MissingLimit
from sim.config.profiles import all_profiles, middlebox_spec
from sim.config.resolve import client_instances
from sim.config.schema import KeyedError, Scenario, lb_list
from sim.config.storm_rules import storm_problem
from sim.config.yamlio import Lines
from sim.config.yamlio import dotted as _dotted
from sim.errors import ConfigError


@dataclass
class Source:
    """Where each key of a raw config was written: a line of ``file``, or a ``--set`` option.

    ``lines`` maps key paths to line numbers. A path whose value came from elsewhere (a ``--set``
    option, a sweep value) maps to None there and to its own (file, line) in ``set_paths``, for
    example ``('--set lb.idle_timeout', None)``.
    """

    file: str
    lines: Lines
    set_paths: dict[tuple, tuple[str, int | None]] = field(default_factory=dict)

    def record_set(self, path: tuple, file: str, line: int | None = None) -> None:
        """``path`` now holds a value from ``file`` (a label such as ``--set KEY``): file lines at and
        below it no longer apply."""
        for p in [p for p in self.lines if p[: len(path)] == path]:
            del self.lines[p]
        for p in [p for p in self.set_paths if p[: len(path)] == path]:
            del self.set_paths[p]
        self.lines[path] = None  # type: ignore[assignment]  # readers of lines.get() see no line
        self.set_paths[path] = (file, line)

    def copy(self) -> Source:
        return Source(self.file, dict(self.lines), dict(self.set_paths))

    def at(self, loc: tuple) -> dict[str, Any]:
        """``file`` and ``line`` (keyword arguments of ConfigError) for the key at ``loc``: where the
        value nearest to it was written, in the file or elsewhere."""
        for n in range(len(loc), -1, -1):
            p = loc[:n]
            if p in self.set_paths:
                file, line = self.set_paths[p]
                return {"file": file, "line": line}
            if p in self.lines:
                return {"file": self.file, "line": self.lines[p]}
        return {"file": self.file, "line": None}


# ----------------------------------------------------------------------------- pydantic errors
def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that owns the last key of ``loc``."""
    cur: Any = model
    for k, part in enumerate(loc[:-1]):
        if isinstance(part, int):
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return None
        f = cast(Any, cur).model_fields.get(part)  # pydantic is Any to mypy (pyproject.toml)
        if f is None:
            return None
        # an index next: the model of the union's list branch (a traffic class, not a traffic mapping)
        listed = isinstance(loc[k + 1], int) and _first_model(_list_of(f.annotation))
        cur = listed or _first_model(f.annotation)
        if cur is None:
            return None
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _list_of(tp: Any) -> Any:
    """The item type of the first ``list[...]`` inside ``tp`` (None when there is none)."""
    if get_origin(tp) is list:
        return get_args(tp)[0]
    for arg in get_args(tp):
        found = _list_of(arg)
        if found is not None:
            return found
    return None


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


def _range(loc: tuple) -> str:
    """The bounds of the integer field at ``loc`` (``1..1000000000``, ``>= 0``), from its metadata."""
    owner = _model_at(Scenario, loc)
    f = owner.model_fields.get(loc[-1]) if owner and loc and isinstance(loc[-1], str) else None
    lo = hi = None
    for m in f.metadata if f else ():
        if isinstance(m, annotated_types.Ge):
            lo = m.ge
        elif isinstance(m, annotated_types.Le):
            hi = m.le
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else (f"<= {hi}" if hi is not None else "")


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


def from_validation(exc: ValidationError, where: Source) -> ConfigError:
    """The most specific error of a pydantic ValidationError, as one ConfigError line."""
    errs = exc.errors(include_url=False)
    # prefer the most specific error (deepest location) for unions
    err = max(errs, key=lambda e: (e["type"] == "extra_forbidden", len(_clean_loc(e["loc"]))))
    loc = _clean_loc(err["loc"])
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, KeyedError):
        loc = loc + (cause.key,)
    key = _dotted(loc)
    etype, msg, given = err["type"], err["msg"], err.get("input")
    if etype == "extra_forbidden":
        owner = _model_at(Scenario, loc)
        names = [f.alias or n for n, f in owner.model_fields.items() if n != "enabled"] if owner else []
        close = difflib.get_close_matches(str(loc[-1]) if loc else "", names, n=1)
        hint = f"unknown key; did you mean '{close[0]}'?" if close else "unknown key"
        return ConfigError(hint, **where.at(loc), key=key, allowed=", ".join(names))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if "(allowed:" in msg:
        problem, _, allowed = msg.partition(" (allowed: ")
        allowed = allowed[:-1] if allowed.endswith(")") else allowed  # the closing paren of "(allowed: "
        return ConfigError(problem, **where.at(loc), key=key, allowed=allowed)
    allowed = ""
    if etype == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        msg = f"{short_repr(given)} is not a valid choice"
    elif etype in ("int_parsing", "int_type", "int_from_float"):
        msg, allowed = f"{short_repr(given)} is not an integer", _range(loc) or "an integer"
    elif etype in ("float_type", "float_parsing"):
        msg, allowed = f"{short_repr(given)} is not a number", "a number"
    elif etype in ("bool_type", "bool_parsing"):
        msg, allowed = f"{short_repr(given)} is not a boolean", "true, false"
    elif etype in ("string_type",):
        msg, allowed = f"{short_repr(given)} is not a string", "a string (quote it)"
    elif etype in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        msg = f"{short_repr(given)} is too {'small' if etype.startswith('greater') else 'large'}"
        allowed = _range(loc)
    elif etype == "missing":
        msg = "required key is missing"
    elif etype in ("model_type", "dict_type", "model_attributes_type"):
        msg = f"{short_repr(given)} should be a mapping"
    elif etype in ("list_type", "tuple_type"):
        msg = f"{short_repr(given)} should be a list"
    return ConfigError(msg, **where.at(loc), key=key, allowed=allowed)


# ----------------------------------------------------------------------------- the whole scenario
def validate_scenario(raw: dict, where: Source) -> Scenario:
    """The Scenario of ``raw``, with the checks that span several keys (profiles, terminating LBs)."""
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise from_validation(exc, where) from None
    if scenario.upstream.lb is not None and scenario.envoy is None:
        raise ConfigError("a middlebox between Envoy and the upstream needs an envoy block",
                          **where.at(("upstream", "lb")), key="upstream.lb",
                          allowed="put the middlebox in lb when the client talks to the upstream directly")
    profiles = all_profiles()
    for leg, chain in ((("lb",), scenario.lb), (("upstream", "lb"), scenario.upstream.lb)):
        terminating = [c.profile for c in lb_list(chain) if c.profile in profiles
                       and profiles[c.profile].kind == "terminating"]
        if len(terminating) > 1 or (terminating and leg != ("lb",)):
            raise ConfigError(f"terminating LBs here: {', '.join(terminating)}", **where.at(leg), key=_dotted(leg),
                              allowed="at most one terminating LB (aws-nlb-tls, aws-alb, proxy), on the client's "
                                      "leg `lb`; pass-through devices may stand before and after it")
    for leg, chain in ((("lb",), scenario.lb), (("upstream", "lb"), scenario.upstream.lb)):
        for i, cfg in enumerate(lb_list(chain)):
            path = leg + ((i,) if isinstance(chain, list) else ())
            if cfg.profile not in profiles:
                close = [p for p in profiles if p.startswith(cfg.profile)] or difflib.get_close_matches(
                    cfg.profile, list(profiles), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"unknown profile {cfg.profile!r}{hint}", **where.at(path + ("profile",)),
                                  key=_dotted(path + ("profile",)), allowed=", ".join(profiles))
            rng = profiles[cfg.profile].range_s
            if cfg.idle_timeout is not None and rng and not rng[0] <= cfg.idle_timeout <= rng[1]:
                raise ConfigError(f"{cfg.idle_timeout:g} s is outside what {cfg.profile} accepts",
                                  **where.at(path + ("idle_timeout",)), key=_dotted(path + ("idle_timeout",)),
                                  allowed=f"{rng[0]:g}..{rng[1]:g} s")
    check_port_limits(scenario, where)
    check_fault_legs(scenario, where)
    classes = classes_problem(scenario.traffic)
    if classes is not None:
        loc, problem, allowed = classes
        raise ConfigError(problem, **where.at(loc), key=_dotted(loc), allowed=allowed)
    storm = storm_problem(scenario)
    if storm is not None:
        loc, problem, allowed = storm
        raise ConfigError(problem, **where.at(loc), key=_dotted(loc), allowed=allowed)
    return scenario.at_folder(config_folder(where.file))


def check_port_limits(scenario: Scenario, where: Source) -> None:
    """Every port budget has a limit: a profile whose figure is not published (for this pool size)
    needs ``lb.ports.limit`` (sim.config.ports)."""
    for leg, chain, pool in ((("lb",), scenario.lb, client_instances(scenario)),
                             (("upstream", "lb"), scenario.upstream.lb, 1)):
        for i, cfg in enumerate(lb_list(chain)):
            try:
                middlebox_spec(cfg, pool)
            except MissingLimit as exc:
                path = leg + ((i,) if isinstance(chain, list) else ()) + ("ports", "limit")
                raise ConfigError(exc.problem, **where.at(path), key=_dotted(path), allowed=exc.allowed) from None


def check_fault_legs(scenario: Scenario, where: Source) -> None:
    """Each fault's ``leg`` is ``downstream``, ``upstream`` (with an envoy block) or the profile name
    of exactly one middlebox in ``lb`` or ``upstream.lb``."""
    devices = [c.profile for c in lb_list(scenario.lb) + lb_list(scenario.upstream.lb)]
    legs = ["downstream"] + (["upstream"] if scenario.envoy is not None else [])
    unique = [d for d in dict.fromkeys(devices) if devices.count(d) == 1]
    allowed = ", ".join(legs + unique)
    for i, fault in enumerate(scenario.faults):
        loc = ("faults", i, "leg")
        if fault.leg in legs or fault.leg in unique:
            continue
        if fault.leg == "upstream":
            problem = "there is no upstream leg without an envoy block (the client talks to the upstream directly)"
        elif fault.leg in devices:
            problem = (f"{fault.leg!r} names {devices.count(fault.leg)} middleboxes; a fault stands at one "
                       "(use a leg name)")
        else:
            close = difflib.get_close_matches(fault.leg, legs + unique, n=1)
            problem = f"unknown leg {fault.leg!r}" + (f"; did you mean '{close[0]}'?" if close else "")
        raise ConfigError(problem, **where.at(loc), key=_dotted(loc), allowed=allowed)


def config_folder(file: str) -> str:
    """The absolute folder of the config file ``file``; the working directory when ``file`` is no
    file (``<stdin>``, a label)."""
    path = Path(file)
    return str(path.resolve().parent) if file and not file.startswith("<") and path.is_file() else os.getcwd()

"""Load a scenario: YAML with line numbers, ``--set`` overrides, validation, one-line errors."""

from __future__ import annotations

import copy
import itertools
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config.classes import class_path
from sim.config.listener_options import BASE as SOCKET_OPTIONS
from sim.config.listener_options import decode_listener_options
from sim.config.schema import Scenario
from sim.config.sweepaxes import knob_warnings, sweep_axes
from sim.config.validate import Source, validate_scenario
from sim.config.yamlio import Lines, read_yaml
from sim.config.yamlio import dotted as _dotted
from sim.errors import ConfigError

__all__ = ["Loaded", "apply_value", "get_path", "load_config", "parse_set", "set_path", "split_key",
           "sweep_axes", "with_values"]


@dataclass
class Loaded:
    """A validated scenario, the raw mapping it came from and where each key was written."""

    scenario: Scenario
    raw: dict
    file: str
    lines: Lines = field(default_factory=dict)
    sets: list[str] = field(default_factory=list)
    #: key path -> (label, line) for values that did not come from the file (``--set KEY``)
    set_paths: dict[tuple, tuple[str, int | None]] = field(default_factory=dict)
    #: ``envoy.listener.socket_options`` as decoded ({level, name, int_value}); ``raw`` holds the
    #: ``keepalive`` spelling instead (DESIGN §4: two spellings of one setting)
    listener_socket_options: list[dict] | None = None
    #: one-line warnings printed when the config loaded (sweep knobs that are conditions)
    warnings: list[str] = field(default_factory=list)

    @property
    def source(self) -> Source:
        """Where each key of ``raw`` was written (a copy: validating a variant must not change it)."""
        return Source(self.file, dict(self.lines), dict(self.set_paths))


# ----------------------------------------------------------------------------- dotted keys
def split_key(key: str) -> tuple:
    """``kernel.sysctl.net.ipv4.tcp_retries2`` → ('kernel', 'sysctl', 'net.ipv4.tcp_retries2').

    In the sweep block, the rest of the key is one axis name: ``sweep.kernel.hz`` → ('sweep',
    'kernel.hz') and ``sweep.conditions.kernel.hz`` → ('sweep', 'conditions', 'kernel.hz').
    """
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
    """Set a nested key; a scalar on the way (``keepalive: off``) becomes a mapping. An integer
    indexes a list on the way (a traffic class: ``class_path``)."""
    node: Any = data
    for k, p in enumerate(path[:-1]):
        nxt = node[p] if isinstance(node, list) else node.get(p)
        after = path[k + 1]
        if not (isinstance(nxt, dict) or (isinstance(nxt, list) and isinstance(after, int)
                                          and 0 <= after < len(nxt))):
            nxt = {}
            node[p] = nxt
        node = nxt
    node[path[-1]] = value


def get_path(data: Any, path: tuple) -> Any:
    for p in path:
        if isinstance(data, list) and isinstance(p, int) and 0 <= p < len(data):
            data = data[p]
            continue
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


def _normalise_lb(raw: dict) -> None:
    """``lb: aws-nlb-tcp`` → ``lb: {profile: aws-nlb-tcp}`` so that fields can be overridden."""
    for path in (("lb",), ("upstream", "lb")):
        value = get_path(raw, path)
        if isinstance(value, str):
            set_path(raw, path, {"profile": value})


def apply_value(raw: dict, path: tuple, value: Any, where: Source | None = None) -> list[dict] | None:
    """Apply one override (a --set or a sweep value) to a raw config, socket_options rules included.

    New ``socket_options`` win over the ``keepalive`` already there; a mapping that holds both
    spellings (``--set 'envoy.listener={socket_options: [...], keepalive: ...}'``) must agree.
    Returns the decoded socket options when the value brought some, else None.
    """
    _normalise_lb(raw)
    set_path(raw, path, copy.deepcopy(value))
    _normalise_lb(raw)
    listener = get_path(raw, ("envoy", "listener"))
    if not isinstance(listener, dict) or "socket_options" not in listener:
        return None
    if path[: len(SOCKET_OPTIONS)] == SOCKET_OPTIONS:
        listener.pop("keepalive", None)  # the new value wins over the file's
    return decode_listener_options(raw, where or Source("--set " + _dotted(path), {}))


def pin_swept(raw: dict, key: str, value: Any) -> None:
    """A ``--set`` of a key the sweep block also sweeps (a knob or a condition): the command line
    wins, so that axis is pinned to the one value. Else the axis's values would replace it at every
    point and the ``--set`` would silently do nothing (``--set connections=6`` on a sweep of fleet
    sizes)."""
    sweep = raw.get("sweep")
    if not isinstance(sweep, dict):
        return
    conds = sweep.get("conditions")
    for block in (sweep, conds if isinstance(conds, dict) else {}):
        if key in block and key != "conditions":
            block[key] = [copy.deepcopy(value)]


# ----------------------------------------------------------------------------- entry point
def _read(path: str | Path, file: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config: {exc.strerror}", file=file) from None
    except UnicodeDecodeError as exc:
        data = Path(path).read_bytes()
        line_no = data[: exc.start].count(b"\n") + 1
        src = data.split(b"\n")[line_no - 1].decode("utf-8", "replace")
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*:", src)
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=file, line=line_no,
                          key=m.group(1) if m else "", allowed="UTF-8 encoded YAML") from None


_WARNED: set[str] = set()  # a config loaded twice in one process (recommend, report) warns once


def load_config(path: str | Path, sets: list[str] | tuple[str, ...] = ()) -> Loaded:
    """Read, override, validate (the sweep block included). Raises ConfigError."""
    file = str(path)
    raw, lines = read_yaml(_read(path, file), file)
    if not isinstance(raw, dict):
        raise ConfigError("the config must be a YAML mapping", file=file, line=1)
    where = Source(file, lines)
    _normalise_lb(raw)
    options = decode_listener_options(raw, where)
    for item in sets:
        key_path, value = parse_set(item)
        label = "--set " + item.partition("=")[0].strip()
        key_path = class_path(raw, key_path, label)
        where.record_set(key_path, label)
        options = apply_value(raw, key_path, value, where) or options
        if key_path[0] != "sweep":
            pin_swept(raw, item.partition("=")[0].strip(), value)
    scenario = validate_scenario(raw, where)
    knobs, conds = sweep_axes(raw.get("sweep"), file, lines, where)
    for key, values in itertools.chain(knobs.items(), conds.items()):
        axis = ("sweep", "conditions", key) if key in conds else ("sweep", key)
        for i, value in enumerate(values):
            trial = copy.deepcopy(raw)
            trial.pop("sweep", None)
            trial_where = where.copy()
            try:
                at = class_path(trial, split_key(key))
                trial_where.record_set(at, **where.at(axis))
                apply_value(trial, at, value, trial_where)
                validate_scenario(trial, trial_where)
            except ConfigError as exc:
                inner = f"{exc.key}: " if exc.key and exc.key != key else ""
                raise ConfigError(f"value {value!r}: {inner}{exc.problem}", **where.at(axis),
                                  key=f"{_dotted(axis)}[{i}]", allowed=exc.allowed) from None
    warnings = knob_warnings(knobs, where)
    for text in warnings:
        if text not in _WARNED:
            _WARNED.add(text)
            print(f"warning: {text}", file=sys.stderr)
    return Loaded(scenario=scenario, raw=raw, file=file, lines=lines, sets=list(sets),
                  set_paths=dict(where.set_paths), listener_socket_options=options, warnings=warnings)


def with_values(loaded: Loaded, values: dict[str, Any]) -> Scenario:
    """The scenario with sweep values applied (keys dotted, as in the sweep block). An error is
    reported at the line of the sweep axis that brought the value."""
    raw = copy.deepcopy(loaded.raw)
    raw.pop("sweep", None)
    where = loaded.source
    for key, value in values.items():
        path = class_path(raw, split_key(key))
        axis = next((a for a in (("sweep", key), ("sweep", "conditions", key)) if a in where.lines), None)
        if axis is not None:
            where.record_set(path, **loaded.source.at(axis))
        apply_value(raw, path, value, where)
    return validate_scenario(raw, where)


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
    loaded.scenario.at_folder(os.getcwd())  # not the private file's: a traffic process's module is here
    return loaded

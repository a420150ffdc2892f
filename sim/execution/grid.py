"""Grid expansion: the product of every sweep axis, conditions included (DESIGN §4)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from typing import Any

from sim.config.load import Loaded, split_key, sweep_axes, with_values
from sim.config.schema import Scenario
from sim.output import json_text
from sim.results.columns import stored_params


@dataclass(frozen=True)
class Point:
    """One grid point: its raw values (as written), canonical values (seconds, false; mappings as
    their JSON text, so that they can be grouped) and the values as stored in the tables."""

    point_id: str
    index: int
    raw: dict[str, Any]
    params: dict[str, Any]
    scenario: Scenario
    stored: dict[str, Any] = field(default_factory=dict)
    json_keys: frozenset[str] = frozenset()


def canonical_value(sc: Scenario, key: str) -> Any:
    """The resolved value at a dotted key: durations in seconds, ``off`` as false, mappings as dicts."""
    node: Any = sc.model_dump(mode="json")
    for part in split_key(key):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get("enabled") is False:
        return False
    if isinstance(node, dict) and "enabled" in node:
        node = {k: v for k, v in node.items() if k != "enabled" and v is not None} or True
    return node


def canonical(sc: Scenario, key: str) -> Any:
    """``canonical_value``, with mappings and lists as their JSON text: hashable, for tables and group-bys."""
    node = canonical_value(sc, key)
    return json_text(node) if isinstance(node, (dict, list)) else node


def point_id(params: dict[str, Any]) -> str:
    """A short stable id from the canonical parameters."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def grid_size(loaded: Loaded) -> int:
    """The number of grid points, from the axis lengths alone (nothing is expanded)."""
    knobs, conds = sweep_axes(loaded.raw.get("sweep"), loaded.file, loaded.lines)
    return math.prod(len(v) for v in {**knobs, **conds}.values())


def expand(loaded: Loaded) -> tuple[list[Point], list[str], list[str]]:
    """(points, knob keys, condition keys). No sweep block → one point, the config itself."""
    knobs, conds = sweep_axes(loaded.raw.get("sweep"), loaded.file, loaded.lines)
    axes = {**knobs, **conds}
    keys = list(axes)
    points = []
    for i, combo in enumerate(itertools.product(*axes.values())):
        raw = dict(zip(keys, combo, strict=True))
        sc = with_values(loaded, raw)
        values = {k: canonical_value(sc, k) for k in keys}
        params = {k: json_text(v) if isinstance(v, (dict, list)) else v for k, v in values.items()}
        points.append(Point(point_id(params), i, raw, params, sc, values))
    stored, json_keys = stored_params([p.stored for p in points])
    points = [Point(p.point_id, p.index, p.raw, p.params, p.scenario, s, json_keys)
              for p, s in zip(points, stored, strict=True)]
    return points, list(knobs), list(conds)

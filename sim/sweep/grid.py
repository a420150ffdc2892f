"""Grid expansion: the product of every sweep axis, conditions included (DESIGN §4)."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from sim.config.load import Loaded, split_key, sweep_axes, with_values
from sim.config.schema import Scenario


@dataclass(frozen=True)
class Point:
    """One grid point: its raw values (as written) and canonical values (seconds, false)."""

    point_id: str
    index: int
    raw: dict[str, Any]
    params: dict[str, Any]
    scenario: Scenario


def canonical(sc: Scenario, key: str) -> Any:
    """The resolved value at a dotted key: durations in seconds, ``off`` as false."""
    node: Any = sc.model_dump(mode="json")
    for part in split_key(key):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get("enabled") is False:
        return False
    if isinstance(node, dict) and "enabled" in node:
        node = {k: v for k, v in node.items() if k != "enabled" and v is not None} or True
    if isinstance(node, (dict, list)):  # a hashable, stable spelling for tables and group-bys
        return json.dumps(node, sort_keys=True, separators=(",", ":"))
    return node


def point_id(params: dict[str, Any]) -> str:
    """A short stable id from the canonical parameters."""
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def expand(loaded: Loaded) -> tuple[list[Point], list[str], list[str]]:
    """(points, knob keys, condition keys). No sweep block → one point, the config itself."""
    knobs, conds = sweep_axes(loaded.raw.get("sweep"), loaded.file, loaded.lines)
    axes = {**knobs, **conds}
    keys = list(axes)
    points = []
    for i, combo in enumerate(itertools.product(*axes.values())):
        raw = dict(zip(keys, combo, strict=True))
        sc = with_values(loaded, raw)
        params = {k: canonical(sc, k) for k in keys}
        points.append(Point(point_id(params), i, raw, params, sc))
    return points, list(knobs), list(conds)

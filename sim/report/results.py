"""Load a sweep's results folder into frames: shared by ``report`` and the notebooks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config.load import Loaded, load_config
from sim.errors import ConfigError


@dataclass
class Results:
    root: Path
    meta: dict
    knobs: list[str]
    conditions: list[str]
    points: pd.DataFrame  # one row per grid point (summary.csv)
    table: pd.DataFrame  # one row per knob setting
    loaded: Loaded  # the resolved config
    connections: pd.DataFrame | None
    series: pd.DataFrame | None


def _parse_cell(v: Any) -> Any:
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        try:
            parsed = json.loads(v)
        except ValueError:
            return v
        return v if isinstance(parsed, (dict, list)) else parsed  # mappings stay text: hashable
    return v


def load_results(root: str | Path) -> Results:
    """Everything a sweep wrote under ``root``; ConfigError if it is not a results folder."""
    from sim.report.verdict import per_knob

    root = Path(root)
    summary_csv = root / "summary.csv"
    meta_path = root / "sweep.json"
    if not summary_csv.exists() or not meta_path.exists():
        raise ConfigError("not a sweep results folder (summary.csv and sweep.json are missing)", file=str(root),
                          allowed="a folder written by 'python -m sim sweep'")
    meta = json.loads(meta_path.read_text())
    knobs, conds = meta["knobs"], meta["conditions"]
    pp = pd.read_csv(summary_csv)
    for k in knobs + conds:
        pp[k] = pp[k].map(_parse_cell)
    conns_path, series_path = root / "connections.parquet", root / "series.parquet"
    return Results(
        root=root, meta=meta, knobs=knobs, conditions=conds, points=pp, table=per_knob(pp, knobs),
        loaded=load_config(root / "config.resolved.yaml"),
        connections=pd.read_parquet(conns_path) if conns_path.exists() else None,
        series=pd.read_parquet(series_path) if series_path.exists() else None,
    )


def config_value(v: Any) -> Any:
    """A canonical swept value as a config value again (mappings are stored as JSON text)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v

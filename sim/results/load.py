"""Load a sweep's results folder into frames: shared by ``report`` and the notebooks. It returns
what the folder stores; the tables derived from it (such as the verdict table per knob setting,
``sim.report.verdict.per_knob``) are the report's.

Columns held as JSON text (sim/results/columns.py: mixed or non-scalar swept keys, seeds beyond
int64, mapping- or list-valued summary fields) are listed in ``sweep.json`` (``json_columns``) and
decoded here, so that a folder gives back the values the sweep had: swept mappings as their canonical
JSON text (hashable, as the grid holds them), ``off`` as False, nested summary fields as dicts and
lists."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config.load import Loaded, load_config
from sim.errors import ConfigError
from sim.output import from_json_text


@dataclass
class Results:
    root: Path
    meta: dict
    knobs: list[str]
    conditions: list[str]
    points: pd.DataFrame  # one row per grid point (summary.csv)
    loaded: Loaded  # the resolved config
    connections: pd.DataFrame | None
    series: pd.DataFrame | None
    trace: pd.DataFrame | None  # the packets of each task's earliest-dropped connection (trace.parquet)
    #: the occupancy per bucket of each limited device (limits.parquet; sim.metrics.limits)
    limits: pd.DataFrame | None = None


def _parse_cell(v: Any) -> Any:
    """A swept value from a folder written before ``json_columns`` existed (best effort)."""
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


def decode_columns(df: pd.DataFrame, json_cols: Iterable[str], hashable: Iterable[str] = ()) -> pd.DataFrame:
    """``df`` with its JSON-text columns decoded; those in ``hashable`` (swept keys) keep mappings
    and lists as canonical JSON text."""
    df = df.copy()
    keep_text = set(hashable)
    for c in json_cols:
        if c in df:
            df[c] = df[c].map(lambda v, h=c in keep_text: from_json_text(v, hashable=h)).astype(object)
    return df


def _meta(root: Path) -> dict:
    meta_path = root / "sweep.json"
    if not (root / "summary.csv").exists() or not meta_path.exists():
        raise ConfigError("not a sweep results folder (summary.csv and sweep.json are missing)", file=str(root),
                          allowed="a folder written by 'python -m sim sweep'")
    return json.loads(meta_path.read_text())


def load_results(root: str | Path) -> Results:
    """Everything a sweep wrote under ``root``; ConfigError if it is not a results folder."""
    root = Path(root)
    meta = _meta(root)
    knobs, conds = meta["knobs"], meta["conditions"]
    json_cols = (meta.get("json_columns") or {}).get("summary.csv")
    if json_cols is None:  # written before json_columns existed
        pp = pd.read_csv(root / "summary.csv")
        for k in knobs + conds:
            pp[k] = pp[k].map(_parse_cell)
    else:
        pp = decode_columns(pd.read_csv(root / "summary.csv", dtype={c: str for c in json_cols}), json_cols,
                            knobs + conds)
    conns_path, series_path, trace_path = root / "connections.parquet", root / "series.parquet", root / "trace.parquet"
    return Results(
        root=root, meta=meta, knobs=knobs, conditions=conds, points=pp,
        loaded=load_config(root / "config.resolved.yaml"),
        connections=pd.read_parquet(conns_path) if conns_path.exists() else None,
        series=pd.read_parquet(series_path) if series_path.exists() else None,
        trace=pd.read_parquet(trace_path) if trace_path.exists() else None,
        limits=pd.read_parquet(root / "limits.parquet") if (root / "limits.parquet").exists() else None,
    )


def load_points(root: str | Path) -> pd.DataFrame:
    """points.parquet (one row per grid point x replication) with its JSON columns decoded: swept
    keys as in ``load_results``, a swept ``seed`` as ``config_seed`` (Python ints, exact), nested
    summary fields as dicts and lists. ``seed`` is the replication's own seed (uint64)."""
    root = Path(root)
    meta = _meta(root)
    json_cols = (meta.get("json_columns") or {}).get("points.parquet", [])
    swept = [("config_seed" if k == "seed" else k) for k in meta["knobs"] + meta["conditions"]]
    return decode_columns(pd.read_parquet(root / "points.parquet"), json_cols, swept)


def config_value(v: Any) -> Any:
    """A canonical swept value as a config value again (mappings are held as JSON text)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v

"""``sweep``, the report half: from a sweep's stored results (sim.results.stored.StoredSweep), the
verdict per grid point and per knob setting, the recommendation and the thresholds; written to
summary.csv and sweep.json. Nothing here simulates: whether the config's own setting is safe, when
it is not a grid point, is asked of the caller (``own_setting_safe``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.output import OutputError, json_text
from sim.report.verdict import per_knob, per_point, predicted_margin_s, recommend, thresholds
from sim.results.columns import param_column
from sim.results.load import config_value, decode_columns
from sim.results.store import write_summary_csv, write_sweep_json
from sim.results.stored import StoredSweep


@dataclass
class SweepOutcome:
    root: Path
    points: pd.DataFrame  # one row per grid point
    table: pd.DataFrame  # one row per knob setting
    knobs: list[str]
    conditions: list[str]
    recommended: dict | None
    failed: list[str]
    base_safe: bool | None


def summarize_sweep(stored: StoredSweep, own_setting_safe: Callable[[], bool] | None = None) -> SweepOutcome:
    """Verdicts from the finished runs in ``stored``; summary.csv and sweep.json. ``own_setting_safe``
    says whether the config's own knob setting is safe when no grid point has it (the CLI simulates
    it; None: ``base_safe`` is then None). A failure here keeps the parts (one line says so;
    --resume merges them again)."""
    try:
        return _summarize(stored, own_setting_safe)
    except OutputError:
        raise
    except Exception as exc:
        raise RuntimeError(f"merging the finished runs failed ({type(exc).__name__}: {exc}); they are kept in "
                           f"{stored.root}/parts/: rerun with --resume") from exc


def _summarize(st: StoredSweep, own_setting_safe: Callable[[], bool] | None) -> SweepOutcome:
    knobs, conds, raw = st.knobs, st.conditions, st.raw
    keys = knobs + conds
    if raw.empty:
        pp = pd.DataFrame(columns=["point_id", *keys, "safe"])
        table = pp
    else:
        hashable = {param_column(k) for k in keys}
        frame = decode_columns(raw, st.json_cols, hashable)
        if "seed" in keys:  # the swept seed, not the replication's, is the grid value here
            frame = frame.drop(columns="seed").rename(columns={"config_seed": "seed"})
        pp = per_point(frame, keys, st.loaded.scenario.connections)
        margins = {pid: predicted_margin_s(sc) for pid, sc in st.scenarios.items()}
        pp["predicted_margin_s"] = pp["point_id"].map(margins).astype(float)
        table = per_knob(pp, knobs)
    rec = recommend(table, knobs) if not raw.empty and knobs else None
    csv, csv_json = _summary_csv(pp, st.point_values, keys, st.json_keys)
    write_summary_csv(st.root, csv)
    base = _base_safe(pp, knobs, st.own, own_setting_safe)
    outcome = SweepOutcome(st.root, pp, table, knobs, conds, rec, st.failed, base)
    meta = {"knobs": knobs, "conditions": conds, "recommended": config_params(rec), "failed_points": st.failed,
            "thresholds": thresholds(pp, knobs[0], conds) if len(knobs) == 1 and not pp.empty else [],
            "config_file": st.loaded.file, "sets": st.loaded.sets, "base_safe": base,
            "json_columns": {"points.parquet": sorted(st.json_cols), "summary.csv": csv_json}}
    write_sweep_json(st.root, meta)
    return outcome


def config_params(row: dict | None) -> dict | None:
    """A row with ``params`` whose mappings are objects again (sweep.json, ``sweep --json``)."""
    if row is None or "params" not in row:
        return row
    return {**row, "params": {k: config_value(v) for k, v in row["params"].items()}}


def _summary_csv(pp: pd.DataFrame, stored: dict[str, dict], keys: list[str], json_keys: frozenset[str]
                 ) -> tuple[str, list[str]]:
    """summary.csv's text: swept values as stored in points.parquet, nested fields as JSON text."""
    df = pp.copy()
    for k in keys:
        if not df.empty:
            df[k] = df["point_id"].map(lambda i, k=k: stored[i][k])
    nested = [c for c in df.columns if c not in keys and df[c].map(lambda v: isinstance(v, (dict, list))).any()]
    for c in nested:
        df[c] = df[c].map(lambda v: json_text(v) if isinstance(v, (dict, list)) else v)
    return df.to_csv(index=False), sorted(set(json_keys) | set(nested))


def _base_safe(pp: pd.DataFrame, knobs: list[str], own: dict, own_setting_safe: Callable[[], bool] | None
               ) -> bool | None:
    """Is the config's own knob setting (``own``) safe under every condition (for --fail-on-unsafe)?"""
    if pp.empty:
        return None
    if not knobs:
        return bool(pp["safe"].all())
    mask = pd.Series(True, index=pp.index)
    for k, v in own.items():
        mask &= pp[k].map(lambda x, v=v: x == v)
    sub = pp[mask]
    if sub.empty:
        return bool(own_setting_safe()) if own_setting_safe is not None else None
    return bool(sub["safe"].all())

"""``sweep``: expand the grid, run every point x replication, persist, verdict, report."""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config.load import Loaded
from sim.output import atomic_write, clean, resolved_config_yaml
from sim.report.verdict import per_knob, per_point, predicted_margin_s, recommend, thresholds
from sim.sweep.executors import run_all
from sim.sweep.grid import expand
from sim.sweep.store import Store
from sim.sweep.tasks import Task, run_and_save, run_task


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


def run_sweep(loaded: Loaded, out: Path, *, executor: str = "process", workers: int | None = None,
              scheduler: str | None = None, resume: bool = False, quiet: bool = False,
              connections: bool = True) -> SweepOutcome:
    """Run (or complete, with ``resume``) the sweep of ``loaded`` into ``out``."""
    points, knobs, conds = expand(loaded)
    store = Store(out)
    if not resume:
        for f in store.parts.glob("*.parquet"):
            f.unlink()
    atomic_write(out / "config.resolved.yaml", resolved_config_yaml(loaded.scenario, loaded.raw.get("sweep")))
    tasks = [Task(p.point_id, p.index, r, p.params, p.scenario)
             for p in points for r in range(p.scenario.replications)]
    done = store.done_keys()
    todo = [t for t in tasks if t.key not in done]
    bar = _progress(len(tasks), len(tasks) - len(todo), quiet)
    # Local workers share this filesystem and write their own results; Dask's may not (a remote
    # scheduler), so theirs come back here to be written.
    in_worker = executor != "dask"
    fn = functools.partial(run_and_save, out=out, connections=connections) if in_worker else run_task
    for task, result, error in run_all(fn, todo, executor, workers, scheduler):
        if error:
            store.save_error(task.key, {"point_id": task.point_id, "point_index": task.point_index,
                                        "replication": task.replication, "error": error,
                                        **{k: json.dumps(v) for k, v in task.params.items()}})
        else:
            if not in_worker:
                row, conns, series = result
                store.save(task.key, row, conns if connections else None, series)
            store.clear_error(task.key)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return summarize_sweep(loaded, out, points, knobs, conds, store, connections)


def summarize_sweep(loaded: Loaded, out: Path, points, knobs, conds, store: Store,
                    connections: bool = True) -> SweepOutcome:
    raw_points = store.points()
    keys = knobs + conds
    failed = sorted(set(store.errors().get("point_id", pd.Series(dtype=str)).tolist()))
    if raw_points.empty:
        pp = pd.DataFrame(columns=["point_id", *keys, "safe"])
        table = pp
    else:
        pp = per_point(raw_points, keys, loaded.scenario.connections)
        margins = {p.point_id: predicted_margin_s(p.scenario) for p in points}
        pp["predicted_margin_s"] = pp["point_id"].map(margins).astype(float)
        table = per_knob(pp, knobs)
    rec = recommend(table, knobs) if not raw_points.empty and knobs else None
    store.finalize(pp, connections, raw_points)
    base = _base_safe(loaded, pp, knobs)
    outcome = SweepOutcome(out, pp, table, knobs, conds, rec, failed, base)
    meta = {"knobs": knobs, "conditions": conds, "recommended": rec, "failed_points": failed,
            "thresholds": thresholds(pp, knobs[0], conds) if len(knobs) == 1 and not pp.empty else [],
            "config_file": loaded.file, "sets": loaded.sets, "base_safe": base}
    atomic_write(out / "sweep.json", json.dumps(clean(meta), indent=2) + "\n")
    return outcome


def _base_safe(loaded: Loaded, pp: pd.DataFrame, knobs: list[str]) -> bool | None:
    """Is the config's own knob setting safe under every condition (for --fail-on-unsafe)?"""
    if pp.empty:
        return None
    if not knobs:
        return bool(pp["safe"].all())
    from sim.sweep.grid import canonical

    own = {k: canonical(loaded.scenario, k) for k in knobs}
    mask = pd.Series(True, index=pp.index)
    for k, v in own.items():
        mask &= pp[k].map(lambda x, v=v: x == v)
    sub = pp[mask]
    if sub.empty:
        from sim.runner import run_scenario

        return run_scenario(loaded.scenario, keep_records=False).summary["silent_drops"] == 0
    return bool(sub["safe"].all())


def _progress(total: int, initial: int, quiet: bool) -> Any:
    if quiet or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="run", desc="sweep", file=sys.stderr)

"""``sweep``: expand the grid, run every point x replication, persist, verdict, report."""

from __future__ import annotations

import functools
import json
import sys
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from sim.config.load import Loaded
from sim.errors import ConfigError
from sim.execution.executors import available_cores, run_all
from sim.execution.grid import Point, expand
from sim.execution.progress import progress
from sim.execution.seeds import replication_seed
from sim.execution.tasks import Task, fingerprint, run_and_save, run_task, scenario_digest
from sim.output import OutputError, atomic_write, clean, json_text
from sim.report.verdict import per_knob, per_point, predicted_margin_s, recommend, thresholds
from sim.results.columns import param_column
from sim.results.folder import claim_folder, read_marker, resolved_config_yaml
from sim.results.load import config_value, decode_columns
from sim.results.store import Store


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


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep, raised once what had finished is merged into the results folder."""

    def __init__(self, done: int, total: int, root: Path) -> None:
        self.done, self.total, self.root = done, total, root
        super().__init__(f"{done} of {total} runs done")


def cap_workers(requested: int | None, tasks: int, label: str, unit: str = "task") -> int:
    """Worker processes: ``requested`` (default: the cores), at most the cores and the tasks (or
    slots). A request above that is capped, and stderr says so."""
    cores = available_cores()
    n = max(1, min(requested or cores, cores, tasks))
    if requested is not None and requested > n and tasks > 0:
        print(f"{label}: --workers {requested} capped at {n} ({tasks} {unit}(s), {cores} core(s))", file=sys.stderr)
    return n


def make_tasks(points: list[Point]) -> list[Task]:
    tasks = []
    for p in points:
        digest = scenario_digest(p.scenario)
        for r in range(p.scenario.replications):
            seed = replication_seed(p.scenario.seed, r)
            tasks.append(Task(p.point_id, p.index, r, seed, fingerprint(digest, seed), p.stored, p.scenario,
                              p.json_keys, p.params))
    return tasks


def run_sweep(loaded: Loaded, out: Path, *, executor: str = "process", workers: int | None = None,
              scheduler: str | None = None, resume: bool = False, quiet: bool = False,
              connections: bool = True, force: bool = False, overwrite: bool = False) -> SweepOutcome:
    """Run (or complete, with ``resume``) the sweep of ``loaded`` into ``out``. Refuses (ConfigError)
    a sweep over the cost limits unless ``force``, and a folder that is not ours unless ``overwrite``."""
    from sim.execution.cost import check, estimate_sweep

    if not force:  # before expanding the grid
        check(estimate_sweep(loaded, workers or available_cores()), file=loaded.file)
    name = loaded.scenario.name
    previous = read_marker(out) if out.is_dir() else None
    if resume and previous and previous.get("name") not in (None, name):
        raise ConfigError(f"holds the sweep of scenario {previous.get('name')!r}, not {name!r}: --resume would "
                          "mix two configs", file=str(out), key="--resume",
                          allowed="the same config, another --out, or no --resume to replace it")
    claim_folder(out, "sweep", name, overwrite)
    points, knobs, conds = expand(loaded)
    store = Store(out)
    if not resume:
        store.clear()
    tasks = make_tasks(points)
    done = store.done()
    todo = [t for t in tasks if t.stem not in done]
    if resume:
        print(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} runs already done", file=sys.stderr)
    atomic_write(out / "config.resolved.yaml", resolved_config_yaml(loaded.scenario, loaded.raw.get("sweep")))
    n = cap_workers(workers, len(todo), "sweep") if not scheduler else workers
    try:
        _execute(store, todo, len(tasks), executor, n, scheduler, quiet, connections)
    except KeyboardInterrupt:
        summarize_sweep(loaded, out, points, knobs, conds, store, tasks, connections)
        raise Interrupted(len(store.done() & {t.stem for t in tasks}), len(tasks), out) from None
    return summarize_sweep(loaded, out, points, knobs, conds, store, tasks, connections)


def _execute(store: Store, todo: list[Task], total: int, executor: str, workers: int | None,
             scheduler: str | None, quiet: bool, connections: bool) -> None:
    # Local workers share this filesystem and write their own results; Dask's may not (a remote
    # scheduler), so theirs come back here to be written.
    in_worker = executor != "dask"
    fn = functools.partial(run_and_save, out=store.root, connections=connections) if in_worker else run_task
    bar = progress(total, total - len(todo), quiet=quiet)
    try:
        with closing(run_all(fn, todo, executor, workers, scheduler)) as results:
            for task, result, error in results:
                if error:
                    store.save_error(task.key, {"point_id": task.point_id, "point_index": task.point_index,
                                                "replication": task.replication, "error": error,
                                                **{k: json.dumps(v) for k, v in task.params.items()}})
                else:
                    if not in_worker:
                        row, conns, series, json_cols = result
                        store.save(task.stem, row, conns if connections else None, series, json_cols)
                    store.clear_error(task.key)
                if bar is not None:
                    bar.update(1, failed=bool(error))
    finally:
        if bar is not None:
            bar.close()


def summarize_sweep(loaded: Loaded, out: Path, points: list[Point], knobs: list[str], conds: list[str],
                    store: Store, tasks: list[Task], connections: bool = True) -> SweepOutcome:
    """Verdicts from the finished parts of ``tasks``; points.parquet, summary.csv, sweep.json. A
    failure here keeps the parts (one line says so; --resume merges them again)."""
    try:
        return _summarize(loaded, out, points, knobs, conds, store, tasks, connections)
    except OutputError:
        raise
    except Exception as exc:
        raise RuntimeError(f"merging the finished runs failed ({type(exc).__name__}: {exc}); they are kept in "
                           f"{out}/parts/: rerun with --resume") from exc


def _summarize(loaded: Loaded, out: Path, points: list[Point], knobs: list[str], conds: list[str],
               store: Store, tasks: list[Task], connections: bool) -> SweepOutcome:
    stems = [t.stem for t in tasks]
    raw, json_cols = store.points(stems)
    keys = knobs + conds
    json_keys = points[0].json_keys if points else frozenset()
    finished = store.done()
    errors = store.errors({t.key for t in tasks if t.stem not in finished})
    failed = sorted(set(errors.get("point_id", pd.Series(dtype=str)).tolist()))
    if raw.empty:
        pp = pd.DataFrame(columns=["point_id", *keys, "safe"])
        table = pp
    else:
        hashable = {param_column(k) for k in keys}
        frame = decode_columns(raw, json_cols, hashable)
        if "seed" in keys:  # the swept seed, not the replication's, is the grid value here
            frame = frame.drop(columns="seed").rename(columns={"config_seed": "seed"})
        pp = per_point(frame, keys, loaded.scenario.connections)
        margins = {p.point_id: predicted_margin_s(p.scenario) for p in points}
        pp["predicted_margin_s"] = pp["point_id"].map(margins).astype(float)
        table = per_knob(pp, knobs)
    rec = recommend(table, knobs) if not raw.empty and knobs else None
    csv, csv_json = _summary_csv(pp, points, keys, json_keys)
    store.finalize(raw, json_cols, csv, stems, connections)
    base = _base_safe(loaded, pp, knobs)
    outcome = SweepOutcome(out, pp, table, knobs, conds, rec, failed, base)
    meta = {"knobs": knobs, "conditions": conds, "recommended": config_params(rec), "failed_points": failed,
            "thresholds": thresholds(pp, knobs[0], conds) if len(knobs) == 1 and not pp.empty else [],
            "config_file": loaded.file, "sets": loaded.sets, "base_safe": base,
            "json_columns": {"points.parquet": sorted(json_cols), "summary.csv": csv_json}}
    atomic_write(out / "sweep.json", json.dumps(clean(meta), indent=2) + "\n")
    return outcome


def config_params(row: dict | None) -> dict | None:
    """A row with ``params`` whose mappings are objects again (sweep.json, ``sweep --json``)."""
    if row is None or "params" not in row:
        return row
    return {**row, "params": {k: config_value(v) for k, v in row["params"].items()}}


def _summary_csv(pp: pd.DataFrame, points: list[Point], keys: list[str], json_keys: frozenset[str]
                 ) -> tuple[str, list[str]]:
    """summary.csv's text: swept values as stored in points.parquet, nested fields as JSON text."""
    df = pp.copy()
    by_id = {p.point_id: p.stored for p in points}
    for k in keys:
        if not df.empty:
            df[k] = df["point_id"].map(lambda i, k=k: by_id[i][k])
    nested = [c for c in df.columns if c not in keys and df[c].map(lambda v: isinstance(v, (dict, list))).any()]
    for c in nested:
        df[c] = df[c].map(lambda v: json_text(v) if isinstance(v, (dict, list)) else v)
    return df.to_csv(index=False), sorted(set(json_keys) | set(nested))


def _base_safe(loaded: Loaded, pp: pd.DataFrame, knobs: list[str]) -> bool | None:
    """Is the config's own knob setting safe under every condition (for --fail-on-unsafe)?"""
    if pp.empty:
        return None
    if not knobs:
        return bool(pp["safe"].all())
    from sim.execution.grid import canonical

    own = {k: canonical(loaded.scenario, k) for k in knobs}
    mask = pd.Series(True, index=pp.index)
    for k, v in own.items():
        mask &= pp[k].map(lambda x, v=v: x == v)
    sub = pp[mask]
    if sub.empty:
        from sim.execution.runner import run_scenario

        return run_scenario(loaded.scenario, keep_records=False).summary["silent_drops"] == 0
    return bool(sub["safe"].all())

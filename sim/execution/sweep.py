"""``sweep``, the execution half: expand the grid, run every point x replication, store each part,
merge the finished parts (points.parquet, connections.parquet, series.parquet). The verdicts,
summary.csv and sweep.json are the report's (sim.report.sweep_summary)."""

from __future__ import annotations

import functools
import json
import sys
from contextlib import closing
from pathlib import Path

from sim.config.load import Loaded
from sim.errors import ConfigError
from sim.execution.executors import available_cores, run_all
from sim.execution.grid import Point, canonical, expand
from sim.execution.progress import progress
from sim.execution.seeds import replication_seed
from sim.execution.tasks import Task, fingerprint, run_and_save, run_task, scenario_digest
from sim.output import OutputError, atomic_write
from sim.results.folder import claim_folder, read_marker, resolved_config_yaml
from sim.results.store import Store
from sim.results.stored import StoredSweep
from sim.spec import Shortcuts


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep, raised once what had finished is merged into the results folder
    (``stored``: those results, for the report to summarise)."""

    def __init__(self, done: int, total: int, root: Path, stored: StoredSweep) -> None:
        self.done, self.total, self.root, self.stored = done, total, root, stored
        super().__init__(f"{done} of {total} runs done")


def cap_workers(requested: int | None, tasks: int, label: str, unit: str = "task") -> int:
    """Worker processes: ``requested`` (default: the cores), at most the cores and the tasks (or
    slots). A request above that is capped, and stderr says so."""
    cores = available_cores()
    n = max(1, min(requested or cores, cores, tasks))
    if requested is not None and requested > n and tasks > 0:
        print(f"{label}: --workers {requested} capped at {n} ({tasks} {unit}(s), {cores} core(s))", file=sys.stderr)
    return n


def make_tasks(points: list[Point], shortcuts: Shortcuts | None = None) -> list[Task]:
    """Every point x replication; ``shortcuts`` (the reference engine: ``Shortcuts.none()``) is part
    of each run's fingerprint: the records are the same, the event counts are not."""
    tasks = []
    engine = "" if shortcuts is None or shortcuts == Shortcuts() else f":{shortcuts}"
    for p in points:
        digest = scenario_digest(p.scenario) + engine
        for r in range(p.scenario.replications):
            seed = replication_seed(p.scenario.seed, r)
            tasks.append(Task(p.point_id, p.index, r, seed, fingerprint(digest, seed), p.stored, p.scenario,
                              p.json_keys, p.params, shortcuts))
    return tasks


def run_sweep(loaded: Loaded, out: Path, *, executor: str = "process", workers: int | None = None,
              scheduler: str | None = None, resume: bool = False, quiet: bool = False,
              connections: bool = True, force: bool = False, overwrite: bool = False,
              shortcuts: Shortcuts | None = None) -> StoredSweep:
    """Run (or complete, with ``resume``) the sweep of ``loaded`` into ``out`` and merge its finished
    parts; returns what is stored, for the report (``sim.report.sweep_summary.summarize_sweep``).
    Refuses (ConfigError) a sweep over the cost limits unless ``force``, and a folder that is not
    ours unless ``overwrite``. Ctrl-C merges what finished, then raises Interrupted."""
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
    tasks = make_tasks(points, shortcuts)
    done = store.done()
    todo = [t for t in tasks if t.stem not in done]
    if resume:
        print(f"resuming: {len(tasks) - len(todo)} of {len(tasks)} runs already done", file=sys.stderr)
    atomic_write(out / "config.resolved.yaml", resolved_config_yaml(loaded.scenario, loaded.raw.get("sweep")))
    n = cap_workers(workers, len(todo), "sweep") if not scheduler else workers
    try:
        _execute(store, todo, len(tasks), executor, n, scheduler, quiet, connections)
    except KeyboardInterrupt:
        stored = merge_sweep(loaded, out, points, knobs, conds, store, tasks, connections)
        raise Interrupted(len(store.done() & {t.stem for t in tasks}), len(tasks), out, stored) from None
    return merge_sweep(loaded, out, points, knobs, conds, store, tasks, connections)


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
                        row, conns, series, json_cols, trace, limits = result
                        store.save(task.stem, row, conns if connections else None, series, json_cols, trace,
                                   limits)
                    store.clear_error(task.key)
                if bar is not None:
                    bar.update(1, failed=bool(error))
    finally:
        if bar is not None:
            bar.close()


def merge_sweep(loaded: Loaded, out: Path, points: list[Point], knobs: list[str], conds: list[str],
                store: Store, tasks: list[Task], connections: bool = True) -> StoredSweep:
    """The finished parts of ``tasks`` merged: points.parquet, connections.parquet (unless not
    ``connections``), series.parquet and trace.parquet. A failure here keeps the parts (one line
    says so; --resume merges them again)."""
    try:
        return _merge(loaded, out, points, knobs, conds, store, tasks, connections)
    except OutputError:
        raise
    except Exception as exc:
        raise RuntimeError(f"merging the finished runs failed ({type(exc).__name__}: {exc}); they are kept in "
                           f"{out}/parts/: rerun with --resume") from exc


def _merge(loaded: Loaded, out: Path, points: list[Point], knobs: list[str], conds: list[str],
           store: Store, tasks: list[Task], connections: bool) -> StoredSweep:
    stems = [t.stem for t in tasks]
    raw, json_cols = store.points(stems)
    finished = store.done()
    errors = store.errors({t.key for t in tasks if t.stem not in finished})
    failed = sorted(set(errors["point_id"].tolist())) if "point_id" in errors else []
    store.finalize(raw, json_cols, stems, connections)
    return StoredSweep(out, loaded, knobs, conds, raw, json_cols, failed,
                       point_values={p.point_id: p.stored for p in points},
                       scenarios={p.point_id: p.scenario for p in points},
                       json_keys=points[0].json_keys if points else frozenset(),
                       own={k: canonical(loaded.scenario, k) for k in knobs})

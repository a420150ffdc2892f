"""The unit of work: one grid point x one replication -> one summary row, its connection rows, its
capacity series, the occupancy of its limited devices and, when it had a silent drop, the packet
trace of its earliest-dropped connection (picklable, pure)."""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config.fleet import is_sampled
from sim.config.schema import Scenario
from sim.execution import run_one
from sim.execution.sampling import run_sampled, sampling_clusters, sampling_strata
from sim.execution.simulate import slots_with
from sim.facts.names import CONN_ID_STRIDE, TRACE_FIELDS
from sim.metrics.capacity import series_frame
from sim.metrics.fleet import scale_to_fleet
from sim.metrics.limits import limit_series_frame
from sim.metrics.summary import summarize_one
from sim.results.columns import nested_to_json, param_column
from sim.results.store import Store
from sim.spec import Shortcuts

#: bumped when what a part file holds changes, so that --resume reruns parts of an older layout
STORE_FORMAT = 5
#: the columns of the connection row repeated on every row of a drop trace (the report's timeline
#: needs them, also once ``--keep summary`` has deleted connections.parquet)
TRACE_CONN_COLUMNS = ("leg", "drop_at_s", "client_outcome", "server_outcome", "client_detect_s",
                      "server_detect_s")
_TRACE_DTYPES = {"t_s": "float64", "at_s": "float64", "seq": "int64", "ack": "int64", "length": "int64"}
#: config keys that do not change one replication's results (its seed is fingerprinted instead)
_NOT_FINGERPRINTED = ("name", "replications", "seed", "sweep")


@dataclass(frozen=True)
class Task:
    point_id: str
    point_index: int
    replication: int
    seed: int  # the replication's own seed (replication_seed(config seed, replication))
    fingerprint: str  # of everything the result depends on (see ``fingerprint``)
    stored: dict[str, Any]  # the swept values as stored in points.parquet (sim.results.columns)
    scenario: Scenario
    json_keys: frozenset[str] = field(default_factory=frozenset)
    params: dict[str, Any] = field(default_factory=dict)  # canonical, for error rows
    #: the engine's work-saving shortcuts (None: all on; Shortcuts.none() is the reference engine)
    shortcuts: Shortcuts | None = None

    @property
    def key(self) -> str:
        return f"{self.point_id}-r{self.replication}"

    @property
    def stem(self) -> str:
        """The name of this task's part files: the key and the fingerprint."""
        return f"{self.key}.{self.fingerprint}"


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """The package version, the digest of the simulation core's sources and the store format."""
    from sim import __version__
    from sim.native import sources_digest

    return f"{__version__}:{sources_digest()}:{STORE_FORMAT}"


def scenario_digest(sc: Scenario) -> str:
    """A digest of a point's resolved scenario (every default filled in) and ``code_digest``: what
    its replications depend on, besides their seeds."""
    data = sc.model_dump(mode="json")
    for key in _NOT_FINGERPRINTED:
        data.pop(key, None)
    blob = json.dumps({"scenario": data, "code": code_digest()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def fingerprint(digest: str, seed: int) -> str:
    """16 hex digits over everything one replication's result depends on: ``scenario_digest`` of its
    point and its own seed. --resume keeps a finished part only when its fingerprint matches."""
    return hashlib.sha256(f"{digest}:{seed}".encode()).hexdigest()[:16]


TaskResult = tuple[dict, pd.DataFrame, pd.DataFrame, set[str], pd.DataFrame | None, pd.DataFrame | None]


def first_drop(columns: dict[str, list], leg: str | None = None) -> int | None:
    """The row of the connection silently dropped first (on ``leg``, or any), None without one; the
    first such row on a tie."""
    dropped = [i for i, silent in enumerate(columns["silent_drop"])
               if silent and (leg is None or columns["leg"][i] == leg)]
    return min(dropped, key=lambda j: columns["drop_at_s"][j]) if dropped else None


def trace_one(sc: Scenario, seed: int, conn_id: int, shortcuts: Shortcuts | None = None) -> list[tuple]:
    """The packet trace of connection ``conn_id`` (sim.facts.names.TRACE_FIELDS): only its client
    slot is simulated again, with tracing on. Slots are independent and the model is deterministic
    for a seed, so these are the packets it had in the whole fleet's run (tests/test_layers.py).
    When Envoy's upstream pools are what slots share, the slot's worker's slots run again; with a
    flow limit, the whole fleet (``slots_with``)."""
    slots = slots_with(sc, conn_id // CONN_ID_STRIDE)
    rec = run_one(sc, seed, trace_conn=conn_id, slots=slots, shortcuts=shortcuts)
    return rec.trace or []


def drop_trace(task: Task, columns: dict[str, list]) -> pd.DataFrame | None:
    """The packets of the task's earliest-dropped connection (None without a silent drop), for the
    report's timeline (``trace_one``). One row per trace entry, the columns of TRACE_FIELDS, with
    the connection's id and TRACE_CONN_COLUMNS."""
    i = first_drop(columns)
    if i is None:
        return None
    conn_id = int(columns["conn_id"][i])
    events = trace_one(task.scenario, task.seed, conn_id, task.shortcuts)
    trace = pd.DataFrame({name: pd.Series([e[k] for e in events], dtype=_TRACE_DTYPES.get(name, object))
                          for k, name in enumerate(TRACE_FIELDS)})
    trace.insert(0, "conn_id", conn_id)
    for k in TRACE_CONN_COLUMNS:
        trace[k] = columns[k][i]
    trace.insert(0, "replication", task.replication)
    trace.insert(0, "point_id", task.point_id)
    return trace


def run_task(task: Task) -> TaskResult:
    """Simulate one replication of one point: (points row, connection rows, series, the row's JSON
    columns, the drop trace or None, the limited devices' occupancy or None without a limit). The
    seed depends only on (config seed, replication), so every point sees the same traffic (common
    random numbers)."""
    sc = task.scenario
    if sc.fleet is not None and is_sampled(sc.fleet):  # figures scaled to the fleet (sim/metrics/fleet.py)
        rec, slots, batches = run_sampled(sc, task.seed, shortcuts=task.shortcuts)
        summary = scale_to_fleet(summarize_one(rec, sc.duration), [(rec.columns, slots)], batches, sc.connections,
                                 sc.duration, task.seed, sampling_clusters(sc), sampling_strata(sc),
                                 len(sc.classes()))
    else:
        rec = run_one(sc, task.seed, shortcuts=task.shortcuts)
        summary = summarize_one(rec, sc.duration)
    outcomes = summary.pop("outcomes")
    summary.pop("_detects")
    for figures in summary.get("by_class", {}).values():
        figures.pop("_detects", None)
    summary["connections_opened"] = summary["connections"]  # a swept `connections` key takes the name
    summary, nested = nested_to_json(summary)
    params = {param_column(k): v for k, v in task.stored.items()}
    row = {"point_id": task.point_id, "point_index": task.point_index, "replication": task.replication,
           "seed": task.seed, **summary, **params, **{f"outcome_{k}": v for k, v in outcomes.items()},
           "run_events": rec.run["events"], "run_wall_s": rec.run["wall_s"], "run_version": rec.run["version"],
           "error": ""}
    conns = pd.DataFrame(rec.columns)
    conns.insert(0, "replication", task.replication)
    conns.insert(0, "point_id", task.point_id)
    series = series_frame(rec.series, task.scenario.duration)
    series.insert(0, "replication", task.replication)
    series.insert(0, "point_id", task.point_id)
    limits = limit_series_frame(rec.series, task.scenario.duration)
    for k, v in (("replication", task.replication), ("point_id", task.point_id)):
        limits.insert(0, k, v)
    return (row, conns, series, nested | {param_column(k) for k in task.json_keys}, drop_trace(task, rec.columns),
            None if limits.empty else limits)


def run_and_save(task: Task, out: Path, connections: bool) -> None:
    """``run_task``, its result written to ``out``'s store by the worker itself (local executors:
    the parent then does no per-task work, which would otherwise cap the speed-up of a sweep whose
    points are quick)."""
    row, conns, series, json_columns, trace, limits = run_task(task)
    Store(out).save(task.stem, row, conns if connections else None, series, json_columns, trace, limits)

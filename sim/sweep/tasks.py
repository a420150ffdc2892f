"""The unit of work: one grid point x one replication -> one summary row (picklable, pure)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config.schema import Scenario
from sim.model.scenario import run_one
from sim.report.capacity import series_frame
from sim.report.summary import summarize_one
from sim.sweep.seeds import replication_seed
from sim.sweep.store import Store


@dataclass(frozen=True)
class Task:
    point_id: str
    point_index: int
    replication: int
    params: dict[str, Any]
    scenario: Scenario

    @property
    def key(self) -> str:
        return f"{self.point_id}-r{self.replication}"


def run_task(task: Task) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Simulate one replication of one point. The seed depends only on (config seed, replication),
    so every point sees the same traffic (common random numbers)."""
    seed = replication_seed(task.scenario.seed, task.replication)
    rec = run_one(task.scenario, seed)
    summary = summarize_one(rec, task.scenario.duration)
    outcomes = summary.pop("outcomes")
    summary.pop("_detects")
    summary["connections_opened"] = summary["connections"]  # a swept `connections` key takes the name
    row = {"point_id": task.point_id, "point_index": task.point_index, "replication": task.replication,
           "seed": seed, **summary, **task.params, **{f"outcome_{k}": v for k, v in outcomes.items()},
           "run_events": rec.run["events"], "run_wall_s": rec.run["wall_s"], "run_version": rec.run["version"],
           "error": ""}
    conns = pd.DataFrame(rec.columns)
    conns.insert(0, "replication", task.replication)
    conns.insert(0, "point_id", task.point_id)
    series = series_frame(rec.series, task.scenario.duration)
    series.insert(0, "replication", task.replication)
    series.insert(0, "point_id", task.point_id)
    return row, conns, series


def run_and_save(task: Task, out: Path, connections: bool) -> None:
    """``run_task``, its result written to ``out``'s store by the worker itself (local executors:
    the parent then does no per-task work, which would otherwise cap the speed-up of a sweep whose
    points are quick)."""
    row, conns, series = run_task(task)
    Store(out).save(task.key, row, conns if connections else None, series)

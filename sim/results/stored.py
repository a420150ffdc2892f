"""A sweep's stored results in memory, as execution hands them to the report: what was run and what
finished, without any verdict. The report derives the per-point and per-knob tables from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sim.config.load import Loaded
from sim.config.schema import Scenario


@dataclass
class StoredSweep:
    root: Path  # the results folder: points.parquet and the merged files are written
    loaded: Loaded  # the config as loaded (its own scenario, file and --set values)
    knobs: list[str]
    conditions: list[str]
    #: points.parquet: one row per finished grid point x replication (grid order), JSON columns as text
    raw: pd.DataFrame
    json_cols: set[str]  # the columns of ``raw`` held as JSON text
    failed: list[str]  # the ids of the points with a failed replication
    #: every grid point, in grid order: id -> the swept values as stored in the tables
    point_values: dict[str, dict[str, Any]] = field(default_factory=dict)
    scenarios: dict[str, Scenario] = field(default_factory=dict)  # id -> the point's resolved scenario
    json_keys: frozenset[str] = frozenset()  # the swept keys stored as JSON text
    own: dict[str, Any] = field(default_factory=dict)  # the config's own knob setting, canonical values

"""The results folder (DESIGN §4). Each finished task is its own Parquet file, written atomically,
so a killed sweep loses only the tasks in flight and ``--resume`` skips what is done."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.output import atomic_write, write_parquet


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts = root / "parts"
        self.parts.mkdir(parents=True, exist_ok=True)

    def done_keys(self) -> set[str]:
        """Tasks already finished without error."""
        return {p.name[: -len(".points.parquet")] for p in self.parts.glob("*.points.parquet")}

    def save(self, key: str, row: dict, conns: pd.DataFrame | None, series: pd.DataFrame | None = None) -> None:
        if conns is not None:
            write_parquet(conns, self.parts / f"{key}.conns.parquet")
        if series is not None:
            write_parquet(series, self.parts / f"{key}.series.parquet")
        write_parquet(pd.DataFrame([row]), self.parts / f"{key}.points.parquet")  # last: marks done

    def save_error(self, key: str, row: dict) -> None:
        write_parquet(pd.DataFrame([row]), self.parts / f"{key}.error.parquet")

    def clear_error(self, key: str) -> None:
        (self.parts / f"{key}.error.parquet").unlink(missing_ok=True)

    def _concat(self, pattern: str) -> pd.DataFrame:
        files = sorted(self.parts.glob(pattern))
        if not files:
            return pd.DataFrame()
        # One Arrow table, converted once: far cheaper than a DataFrame per part for a big sweep.
        tables = [pq.read_table(f) for f in files]
        return pa.concat_tables(tables, promote_options="permissive").to_pandas()

    def points(self) -> pd.DataFrame:
        df = _uniform(self._concat("*.points.parquet"))
        if not df.empty:
            df = df.sort_values(["point_index", "replication"], ignore_index=True)
        return df

    def errors(self) -> pd.DataFrame:
        return self._concat("*.error.parquet")

    def finalize(self, summary: pd.DataFrame, write_connections: bool, points: pd.DataFrame | None = None) -> None:
        """points.parquet, summary.csv and (optionally) connections.parquet from the parts; ``points``:
        ``self.points()`` when the caller has already read it."""
        write_parquet(_uniform(self.points() if points is None else points), self.root / "points.parquet")
        if write_connections:
            conns = self._concat("*.conns.parquet")
            if not conns.empty:
                write_parquet(conns, self.root / "connections.parquet")
        series = self._concat("*.series.parquet")
        if not series.empty:
            write_parquet(series, self.root / "series.parquet")
        atomic_write(self.root / "summary.csv", summary.to_csv(index=False))


def _uniform(df: pd.DataFrame) -> pd.DataFrame:
    """A swept key whose values mix types (``off`` and a keepalive mapping) is stored as JSON text."""
    for col in df.columns:
        if df[col].dtype == object and len({type(v) for v in df[col]}) > 1:
            df[col] = [v if isinstance(v, str) else json.dumps(v) for v in df[col]]
    return df

"""The results folder (DESIGN §4). Each finished task is its own Parquet files, written atomically,
so a killed sweep loses only the tasks in flight and ``--resume`` skips what is done.

Part files are named ``<point_id>-r<replication>.<fingerprint>.<kind>.parquet``: a part is used
only by a task with the same fingerprint (sim.execution.tasks.fingerprint), so --resume never mixes in
results of other settings. The merged files are written one part at a time (streamed), so merging
needs the memory of one part, not of the whole sweep."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sim.output import atomic_write, clean, json_text, output_error, write_parquet
from sim.results.columns import META_KEY

#: columns whose type is fixed whatever the values in one part (a seed of 2**63 or more is uint64
#: in one part and would be int64 in the next)
FIXED_TYPES = {"seed": "uint64", "point_index": "int64", "replication": "int64"}
#: files ``--keep summary`` removes once everything is merged
BULKY = ("connections.parquet", "series.parquet")


#: the part files this package writes (older layouts without a fingerprint included); nothing else
#: in parts/ is ever deleted
PART_FILE = re.compile(r"[0-9a-f]{12}-r[0-9]+(\.[0-9a-f]{16})?\.(points|conns|series|trace|limits|error)\.parquet")


def _stem(path: Path, kind: str) -> str:
    return path.name[: -len(f".{kind}.parquet")]


def _our_parts(parts: Path) -> list[Path]:
    return [f for f in parts.glob("*.parquet") if PART_FILE.fullmatch(f.name)]


class Store:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.parts = root / "parts"
        try:
            self.parts.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(exc, self.parts) from None

    def clear(self) -> None:
        """Forget every finished task (a sweep without --resume starts afresh)."""
        for f in _our_parts(self.parts):
            f.unlink()

    def done(self) -> set[str]:
        """The stems (key.fingerprint) of the tasks already finished without error."""
        return {_stem(p, "points") for p in self.parts.glob("*.points.parquet")}

    def save(self, stem: str, row: dict, conns: pd.DataFrame | None, series: pd.DataFrame | None = None,
             json_columns: Iterable[str] = (), trace: pd.DataFrame | None = None,
             limits: pd.DataFrame | None = None) -> None:
        """One finished task's part files; its points row last, as the mark that it is done.
        ``limits``: the occupancy of its limited devices (sim.metrics.limits), None without one."""
        for kind, frame in (("trace", trace), ("limits", limits)):
            (self.parts / f"{stem}.{kind}.parquet").unlink(missing_ok=True)  # a rerun without one has none
            if frame is not None:
                write_parquet(frame, self.parts / f"{stem}.{kind}.parquet")
        if conns is not None:
            write_parquet(conns, self.parts / f"{stem}.conns.parquet")
        if series is not None:
            write_parquet(series, self.parts / f"{stem}.series.parquet")
        write_table(pd.DataFrame([row]), self.parts / f"{stem}.points.parquet", json_columns)  # last: marks done

    def save_error(self, key: str, row: dict) -> None:
        write_parquet(pd.DataFrame([row]), self.parts / f"{key}.error.parquet")

    def clear_error(self, key: str) -> None:
        (self.parts / f"{key}.error.parquet").unlink(missing_ok=True)

    def _files(self, kind: str, stems: Iterable[str]) -> list[Path]:
        return [f for f in (self.parts / f"{s}.{kind}.parquet" for s in sorted(stems)) if f.exists()]

    def points(self, stems: Iterable[str]) -> tuple[pd.DataFrame, set[str]]:
        """The rows of the finished tasks ``stems`` (grid order), and the columns held as JSON text."""
        tables = [pq.read_table(f) for f in self._files("points", stems)]
        if not tables:
            return pd.DataFrame(), set()
        json_cols = set().union(*(_json_columns(t.schema) for t in tables))
        schema, as_text = unify([t.schema for t in tables])
        merged = pa.concat_tables([conform(t, schema, as_text, json_cols) for t in tables])
        df = merged.to_pandas().sort_values(["point_index", "replication"], ignore_index=True)
        return df, json_cols | as_text

    def errors(self, keys: Iterable[str]) -> pd.DataFrame:
        files = [f for f in (self.parts / f"{k}.error.parquet" for k in sorted(keys)) if f.exists()]
        return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()

    def finalize(self, points: pd.DataFrame, json_cols: set[str], stems: Iterable[str],
                 write_connections: bool) -> None:
        """points.parquet, connections.parquet (optional), series.parquet, trace.parquet (the packets
        of each task's earliest-dropped connection) and limits.parquet (the occupancy of limited
        devices per bucket), the last four streamed from the parts of ``stems``; the parts stay."""
        stems = list(stems)
        write_table(points, self.root / "points.parquet", json_cols)
        for name, kind, wanted in (("connections.parquet", "conns", write_connections),
                                   ("series.parquet", "series", True), ("trace.parquet", "trace", True),
                                   ("limits.parquet", "limits", True)):
            files = self._files(kind, stems) if wanted else []
            if files:
                stream_merge(files, self.root / name)
            else:
                (self.root / name).unlink(missing_ok=True)  # not stale results of an earlier sweep


def write_summary_csv(root: Path, text: str) -> None:
    """summary.csv (one row per grid point, written by the report from points.parquet)."""
    atomic_write(root / "summary.csv", text)


def write_sweep_json(root: Path, meta: dict) -> None:
    """sweep.json: the sweep's axes, recommendation, thresholds and JSON columns (NaN as null)."""
    atomic_write(root / "sweep.json", json.dumps(clean(meta), indent=2) + "\n")


def prune(root: Path) -> None:
    """``--keep summary``: drop the per-connection files and the parts, once merged and reported."""
    for name in BULKY:
        (root / name).unlink(missing_ok=True)
    parts = root / "parts"
    for f in _our_parts(parts) if parts.is_dir() else []:
        f.unlink()
    with contextlib.suppress(OSError):
        parts.rmdir()  # unless someone else's files are in it


def _json_columns(schema: pa.Schema) -> set[str]:
    raw = (schema.metadata or {}).get(META_KEY)
    return set(json.loads(raw)["json_columns"]) if raw else set()


def write_table(df: pd.DataFrame, path: Path, json_cols: Iterable[str] = ()) -> None:
    """``df`` as Parquet, with FIXED_TYPES and the JSON columns named in its schema metadata, atomically."""
    table = pa.Table.from_pandas(df.astype({k: v for k, v in FIXED_TYPES.items() if k in df}), preserve_index=False)
    meta = {**(table.schema.metadata or {}), META_KEY: json.dumps({"json_columns": sorted(json_cols)})}
    buf = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(meta), buf)
    atomic_write(path, buf.getvalue())


def unify(schemas: list[pa.Schema]) -> tuple[pa.Schema, set[str]]:
    """One schema for all parts (ints widen to floats, missing columns are null), and the columns
    whose types cannot merge (a bool in one part, text in another): those become JSON text. Every
    column is written with one type, so this is a safety net for part files of other versions."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive"), set()
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        pass
    types: dict[str, list[pa.DataType]] = {}
    for s in schemas:
        for f in s:
            types.setdefault(f.name, []).append(f.type)
    clash = set()
    for name, ts in types.items():
        try:
            pa.unify_schemas([pa.schema([(name, t)]) for t in ts], promote_options="permissive")
        except (pa.ArrowTypeError, pa.ArrowInvalid):
            clash.add(name)
    fixed = [pa.schema([pa.field(f.name, pa.large_string()) if f.name in clash else f for f in s]) for s in schemas]
    return pa.unify_schemas(fixed, promote_options="permissive"), clash


def conform(table: pa.Table, schema: pa.Schema, as_text: set[str],
            json_cols: set[str] | frozenset[str] = frozenset()) -> pa.Table:
    """``table`` cast to ``schema``; a column in ``as_text`` is turned into JSON text first (unless
    this part already holds it as JSON text)."""
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(len(table), f.type))
            continue
        col = table[f.name]
        is_text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        if f.name in as_text and not (is_text and f.name in json_cols):
            col = pa.array([None if v is None else json_text(v) for v in col.to_pylist()], pa.large_string())
        cols.append(col.cast(f.type))
    return pa.Table.from_arrays(cols, schema=schema.remove_metadata())


def stream_merge(files: list[Path], path: Path, key: str | None = None, by: str | None = None) -> None:
    """Concatenate Parquet ``files`` into ``path``, one file at a time, atomically. ``key``: each
    file is sorted by that column, and so is ``path`` within each value of ``by`` (a column with one
    value per file); overlapping files are merged a batch of each at a time (sim.results.ordered)."""
    schema, as_text = unify([pq.read_schema(f) for f in files])
    schema = schema.remove_metadata()
    tmp = path.with_name(f".{path.name}.merging")
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            if key is None:
                for f in files:
                    writer.write_table(conform(pq.read_table(f), schema, as_text, _json_columns(pq.read_schema(f))))
            else:
                from sim.results.ordered import merged_tables

                for table in merged_tables(files, key, by):
                    writer.write_table(conform(table, schema, as_text, _json_columns(table.schema)))
        tmp.replace(path)
    except OSError as exc:
        raise output_error(exc, path) from None
    finally:
        tmp.unlink(missing_ok=True)

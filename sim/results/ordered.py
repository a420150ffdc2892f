"""Parquet part files read back in key order, with bounded memory (``run --executor dask``'s parts).

A pooled fleet's chunks are Envoy workers' slots, every ``concurrency``-th slot each
(sim.execution.runner.fleet_pieces), so their rows interleave by connection id. Each part is sorted by
its key; the parts whose key ranges overlap are merged a batch of each at a time (a k-way merge),
the others are read one after another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

#: rows held at once while merging overlapping parts, shared among them
MERGE_ROWS = 262_144
#: the fewest rows read from one file at a time
MIN_BATCH_ROWS = 1024


def key_range(path: Path, key: str) -> tuple[int, int] | None:
    """The smallest and largest ``key`` of a part (None: no rows)."""
    col = pq.read_table(path, columns=[key])[key]
    if len(col) == 0:
        return None
    lo_hi = pc.min_max(col)
    return lo_hi["min"].as_py(), lo_hi["max"].as_py()


def overlapping(files: list[Path], key: str) -> list[list[Path]]:
    """``files`` (each sorted by ``key``) in runs to read in order: a run of one file whose keys no
    other file's range reaches, or of several whose ranges overlap, to be merged."""
    ranged = sorted(((r, f) for f in files if (r := key_range(f, key)) is not None), key=lambda x: x[0])
    runs: list[list[Path]] = []
    top = None
    for (lo, hi), f in ranged:
        if runs and top is not None and lo <= top:
            runs[-1].append(f)
            top = max(top, hi)
        else:
            runs.append([f])
            top = hi
    return runs


def merged_tables(files: list[Path], key: str, by: str | None = None) -> Iterator[pa.Table]:
    """The rows of ``files`` (each sorted by ``key``) in ``key`` order, a table at a time. ``by``: a
    column with one value per file (the replication): the files of each value in turn, in their order."""
    segments: dict = {}
    for f in files:
        value = pq.read_table(f, columns=[by])[by][0].as_py() if by is not None else None
        segments.setdefault(value, []).append(f)
    for value in sorted(segments) if by is not None else segments:
        for run in overlapping(segments[value], key):
            if len(run) == 1:
                yield pq.read_table(run[0])
            else:
                yield from _k_way(run, key)


def _k_way(files: list[Path], key: str) -> Iterator[pa.Table]:
    batch_rows = max(MIN_BATCH_ROWS, MERGE_ROWS // len(files))
    readers = [pq.ParquetFile(f).iter_batches(batch_size=batch_rows) for f in files]
    held: list[pa.Table | None] = [None] * len(files)
    live = list(range(len(files)))
    while live:
        for i in list(live):  # every live file holds rows, or is done
            t = held[i]
            if t is None or len(t) == 0:
                nxt = next(readers[i], None)
                if nxt is None:
                    live.remove(i)
                    held[i] = None
                    continue
                held[i] = pa.Table.from_batches([nxt])
        if not live:
            return
        # no file's later rows come before the smallest of the files' last held keys
        bound = min(held[i][key][-1].as_py() for i in live)  # type: ignore[index]
        out = []
        for i in live:
            t = held[i]
            assert t is not None
            take = pc.less_equal(t[key], bound)
            out.append(t.filter(take))
            held[i] = t.filter(pc.invert(take))
        yield pa.concat_tables(out).sort_by(key)

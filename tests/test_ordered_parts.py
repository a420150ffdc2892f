"""Parquet parts read back in key order (sim/results/ordered.py): a pooled fleet's Dask chunks are
Envoy workers' slots, whose rows interleave by connection id."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

import sim.results.ordered as ordered
from sim.results.store import stream_merge


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10_000), st.integers(0, 4)), min_size=1, max_size=300,
                unique_by=lambda r: (r[0], r[1])),
       st.integers(1, 7))
def test_parts_come_back_in_replication_and_key_order_whatever_the_batches(tmp_path_factory, rows, batch):
    """Rows (replication, key, part) spread over parts, each part of one replication and sorted by
    key: the merged file holds every row once, by replication then key."""
    folder = tmp_path_factory.mktemp("parts")
    files = []
    for rep in range(3):
        for part in range(5):
            mine = sorted((k, rep * 100 + part) for r, k, p in rows if r == rep and p == part)
            if not mine:
                continue
            f = folder / f"r{rep}-p{part}.parquet"
            pq.write_table(pa.table({"replication": [rep] * len(mine), "conn_id": [k for k, _ in mine],
                                     "tag": [t for _, t in mine]}), f)
            files.append(f)
    old = ordered.MIN_BATCH_ROWS, ordered.MERGE_ROWS
    ordered.MIN_BATCH_ROWS, ordered.MERGE_ROWS = batch, batch  # many small batches
    try:
        stream_merge(files, folder / "all.parquet", key="conn_id", by="replication")
    finally:
        ordered.MIN_BATCH_ROWS, ordered.MERGE_ROWS = old
    got = pq.read_table(folder / "all.parquet").to_pylist()
    want = sorted((r, k, r * 100 + p) for r, k, p in rows)
    assert [(g["replication"], g["conn_id"], g["tag"]) for g in got] == want


def test_parts_whose_keys_do_not_overlap_are_read_one_after_another(tmp_path):
    for i, keys in enumerate(([0, 1, 2], [3, 4], [10, 12], [11])):
        pq.write_table(pa.table({"conn_id": keys}), tmp_path / f"{i}.parquet")
    runs = ordered.overlapping([tmp_path / f"{i}.parquet" for i in (3, 1, 0, 2)], "conn_id")
    assert [[f.name for f in run] for run in runs] == [["0.parquet"], ["1.parquet"], ["2.parquet", "3.parquet"]]

"""The occupancy of a limited device over time (issue 16 point 5): for each middlebox with a
``flows_limit`` (its flow table) or a ``ports_limit`` (its port budget), the most entries it held in
each bucket of ``series["bucket_s"]`` seconds. The sweep stores it (limits.parquet) so that the
report can plot a device against its limit without keeping every record; the figures themselves
(peak, seconds_full, exhausted_at_s, headroom_pct) are sim.metrics.capacity's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sim.metrics.capacity import LIMIT_KINDS, _buckets, active_flows_at

#: where a device's export (sim.model.middlebox.Middlebox.export) keeps the [start, end) lifetimes
#: of what a limit counts, per kind of limit (LIMIT_KINDS): flow-table entries, ports held
INTERVALS_KEY = {"flows": "intervals", "ports": "port_intervals"}
LIMIT_SERIES_COLUMNS = ["device", "name", "leg", "kind", "t_s", "bucket_s", "occupancy_peak", "limit"]


def occupancy_peaks(intervals: list[tuple[float, float]], duration_s: float, bucket_s: float) -> np.ndarray:
    """The most entries [start, end) held at one instant in each bucket of ``bucket_s`` seconds of
    a run of ``duration_s`` seconds (the peak inside the bucket, not a sample at its start, so a
    table that fills for a few seconds shows full). Their maximum is ``peak_overlap``'s."""
    n = _buckets(duration_s, bucket_s)
    marks = np.arange(n) * bucket_s
    iv = np.asarray(intervals, dtype=float).reshape(-1, 2)
    iv = np.column_stack([iv[:, 0], np.minimum(iv[:, 1], duration_s)])
    iv = iv[iv[:, 1] > iv[:, 0]]
    out = active_flows_at([tuple(r) for r in iv], marks)
    if not len(iv):
        return out
    starts, ends = np.sort(iv[:, 0]), np.sort(iv[:, 1])
    # occupancy changes only at a start or an end: after all of them at one instant (ends and starts
    # at the same instant do not overlap, as in peak_overlap and active_flows_at)
    times = np.unique(np.concatenate([starts, ends]))
    held = np.searchsorted(starts, times, side="right") - np.searchsorted(ends, times, side="right")
    idx = (times // bucket_s).astype(int)
    keep = idx < n
    np.maximum.at(out, idx[keep], held[keep])
    return out


def _fullest(intervals: list[tuple], duration_s: float, bucket_s: float) -> np.ndarray:
    """``occupancy_peaks`` of [start, end) lifetimes, or, for ports held as (start, end, budget)
    (one budget per client instance: sim.model.ports), of the fullest budget in each bucket, which
    is what its limit is compared with."""
    if not intervals or len(intervals[0]) == 2:
        return occupancy_peaks(intervals, duration_s, bucket_s)
    budgets: dict[int, list[tuple[float, float]]] = {}
    for start, end, budget in intervals:
        budgets.setdefault(budget, []).append((start, end))
    return np.maximum.reduce([occupancy_peaks(iv, duration_s, bucket_s) for iv in budgets.values()])


def limit_series_frame(series: dict, duration_s: float) -> pd.DataFrame:
    """One row per bucket per limited device of one run (LIMIT_SERIES_COLUMNS): the device's place
    in the path (``device``), its name and leg, the kind of limit, the bucket's start ``t_s``, the
    peak occupancy in it and the limit. Empty when no device has a limit."""
    bucket_s = series["bucket_s"]
    frames = []
    for i, dev in enumerate(series["devices"]):
        for kind in LIMIT_KINDS:
            limit = dev.get(f"{kind}_limit")
            if not limit:
                continue
            peaks = _fullest(dev.get(INTERVALS_KEY[kind], []), duration_s, bucket_s)
            frames.append(pd.DataFrame({
                "device": i, "name": dev["name"], "leg": dev["leg"], "kind": kind,
                "t_s": np.arange(len(peaks)) * bucket_s, "bucket_s": bucket_s,
                "occupancy_peak": peaks.astype("int64"), "limit": int(limit)}))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LIMIT_SERIES_COLUMNS})
    return pd.concat(frames, ignore_index=True)[LIMIT_SERIES_COLUMNS]

"""Capacity figures per middlebox (``devices``) and for the capacity LB (the ``lb_*`` fields).

A run's ``series`` (sim.model.scenario.World.finish) holds one record per middlebox, in path order,
downstream leg first. **The capacity LB** is the first of them: the client-facing LB, or the first
middlebox of ``upstream.lb`` when the client's leg has none. Every ``lb_*`` figure and the other
CAPACITY_FIELDS describe it alone; ``devices`` gives each middlebox's own figures. Time series are
kept in buckets of ``series["bucket_s"]`` seconds (one minute, coarser for runs over 14 days).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from sim.facts.names import H2_CONTROL_FRAME_BYTES, SEGMENT_HEADER_BYTES

CAPACITY_FIELDS = (
    "failed_requests_peak_per_s", "lb_keepalive_pps", "keepalive_pps_steady", "keepalive_bytes_per_s",
    "lb_bytes_per_s", "lb_active_flows_peak", "lb_active_flows_mean", "new_flows_per_s", "new_flows_peak_per_s",
    "nlcu_mean", "nlcu_peak", "lb_cost_per_hour_usd",
)
#: The figures of each middlebox in ``devices`` (besides ``name`` and ``leg``).
DEVICE_FIELDS = ("flows_peak", "flows_mean", "new_flows_peak_per_s", "keepalive_pps", "nlcu_mean",
                 "keepalive_packets", "new_flows", "lb_rsts", "flows_limit", "connects_rejected", "seconds_full",
                 "exhausted_at_s")
#: device fields summed over replications (the other non-peak ones are averaged)
DEVICE_COUNTS = ("keepalive_packets", "new_flows", "lb_rsts", "connects_rejected")


def peak_overlap(intervals: Iterable[tuple[float, float]]) -> int:
    """The most intervals [start, end) open at one instant."""
    events = []
    for start, end in intervals:
        if end > start:
            events.append((start, 1))
            events.append((end, -1))
    events.sort()
    cur = best = 0
    for _, delta in events:
        cur += delta
        best = max(best, cur)
    return best


def time_full(intervals: Iterable[tuple[float, float]], limit: int | None,
              duration_s: float) -> tuple[float, float | None]:
    """``(seconds_full, exhausted_at_s)``: the simulated seconds the table held ``limit`` entries
    (its ``max_flows``), and the first time it did (None: never, or no limit). Computed from the
    entries' true lifetimes after the run: a silent expiry is only discovered later (lazily), so
    no counter kept during the run knows when a slot really came free."""
    if limit is None:
        return 0.0, None
    events = []
    for start, end in intervals:
        end = min(end, duration_s)
        if end > start:
            events.append((start, 1))
            events.append((end, -1))
    events.sort()
    cur, since, first = 0, 0.0, None
    spans = []
    for t, delta in events:
        was_full = cur >= limit
        cur += delta
        if not was_full and cur >= limit:
            since = t
            if first is None:
                first = t
        elif was_full and cur < limit:
            spans.append(t - since)
    if cur >= limit:
        spans.append(duration_s - since)
    return math.fsum(spans), first


def active_flows_at(intervals: list[tuple[float, float]], marks: np.ndarray) -> np.ndarray:
    """Flows in the table at each mark (the NLB samples active flows once a minute)."""
    if not intervals:
        return np.zeros(len(marks), dtype=int)
    iv = np.asarray(intervals, dtype=float)
    starts = np.sort(iv[:, 0])
    ends = np.sort(iv[:, 1])
    return np.searchsorted(starts, marks, side="right") - np.searchsorted(ends, marks, side="right")


def _buckets(duration_s: float, bucket_s: float) -> int:
    return max(1, int(math.ceil(duration_s / bucket_s)))


def _per_bucket(values: list[int], n: int) -> np.ndarray:
    out = np.zeros(n)
    v = np.asarray(values[:n], dtype=float)
    out[: len(v)] = v
    return out


def _new_per_bucket(per_s: dict[int, int], n: int, bucket_s: float) -> np.ndarray:
    out = np.zeros(n)
    for sec, count in per_s.items():
        b = int(sec // bucket_s)
        if b < n:
            out[b] += count
    return out


def _flows_mean(intervals: list[tuple[float, float]], duration_s: float) -> float:
    # fsum: exact, so the figure does not depend on the order the flows were recorded in
    return math.fsum(min(end, duration_s) - start for start, end in intervals if end > start) / duration_s


def _nlcu_per_bucket(dev: dict, duration_s: float, bucket_s: float) -> np.ndarray | None:
    """NLB capacity units per bucket: the largest of its three dimensions (an estimate)."""
    nlcu = dev["nlcu"]
    if not nlcu:
        return None
    n = _buckets(duration_s, bucket_s)
    marks = np.arange(n) * bucket_s
    new = _new_per_bucket(dev["new_flows_per_s"], n, bucket_s)
    active = active_flows_at(dev["intervals"], marks)
    by = _per_bucket(dev["bytes_per_bucket"], n)
    return np.maximum.reduce([new / bucket_s / nlcu["new_flows_per_s"], active / nlcu["active_flows"],
                              by * (3600.0 / bucket_s) / nlcu["bytes_per_hour"]])


def device_figures(dev: dict, duration_s: float, bucket_s: float) -> dict:
    """One middlebox's capacity figures for one run (DEVICE_FIELDS)."""
    per_bucket = _nlcu_per_bucket(dev, duration_s, bucket_s)
    limit = dev.get("flows_limit")
    seconds_full, exhausted_at_s = time_full(dev["intervals"], limit, duration_s)
    return {
        "name": dev["name"], "leg": dev["leg"],
        "flows_peak": peak_overlap(dev["intervals"]),
        "flows_mean": _flows_mean(dev["intervals"], duration_s),
        "new_flows_peak_per_s": float(max(dev["new_flows_per_s"].values(), default=0)),
        "keepalive_pps": dev["keepalive_packets"] / duration_s,
        "nlcu_mean": float(per_bucket.mean()) if per_bucket is not None else math.nan,
        "keepalive_packets": dev["keepalive_packets"], "new_flows": dev["new_flows"], "lb_rsts": dev["lb_rsts"],
        "flows_limit": limit, "connects_rejected": dev.get("connects_rejected", 0),
        "seconds_full": seconds_full, "exhausted_at_s": exhausted_at_s,
    }


def capacity(series: dict, duration_s: float) -> dict:
    """The CAPACITY_FIELDS of one run: the capacity LB's (all NaN without a middlebox)."""
    out: dict = dict.fromkeys(CAPACITY_FIELDS, math.nan)
    out["failed_requests_peak_per_s"] = float(max(series["failed_per_s"].values(), default=0))
    if not series["devices"]:
        return out
    dev = series["devices"][0]
    bucket_s = series["bucket_s"]
    n = _buckets(duration_s, bucket_s)
    ka = _per_bucket(dev["keepalive_per_bucket"], n)
    by = _per_bucket(dev["bytes_per_bucket"], n)
    # steady state: the second half of the run, whole buckets only (keepalive has no warm-up there
    # as long as TCP_KEEPIDLE + ramp is shorter than half the run)
    half, full = n // 2, int(duration_s // bucket_s)
    steady = ka[half:full] if full > half else ka[half:]
    out["lb_keepalive_pps"] = dev["keepalive_packets"] / duration_s
    out["keepalive_pps_steady"] = float(steady.mean() / bucket_s) if len(steady) else math.nan
    # every keepalive packet's headers, and an HTTP/2 PING's 17-byte frame on top of them
    ka_bytes = ka.sum() * SEGMENT_HEADER_BYTES + dev.get("ping_packets", 0) * H2_CONTROL_FRAME_BYTES
    out["keepalive_bytes_per_s"] = float(ka_bytes / duration_s)
    out["lb_bytes_per_s"] = float(by.sum() / duration_s)
    out["lb_active_flows_peak"] = peak_overlap(dev["intervals"])
    out["lb_active_flows_mean"] = _flows_mean(dev["intervals"], duration_s)
    out["new_flows_per_s"] = dev["new_flows"] / duration_s
    out["new_flows_peak_per_s"] = float(max(dev["new_flows_per_s"].values(), default=0))
    per_bucket = _nlcu_per_bucket(dev, duration_s, bucket_s)
    if per_bucket is not None:
        out["nlcu_mean"] = float(per_bucket.mean())
        out["nlcu_peak"] = float(per_bucket.max())
        nlcu = dev["nlcu"]
        out["lb_cost_per_hour_usd"] = out["nlcu_mean"] * nlcu["price_per_nlcu_hour_usd"] + nlcu["price_per_hour_usd"]
    return out


def devices(series: dict, duration_s: float) -> list[dict]:
    """Every middlebox's figures for one run, in path order (downstream leg first)."""
    return [device_figures(d, duration_s, series["bucket_s"]) for d in series["devices"]]


def combine_devices(runs: list[list[dict]]) -> list[dict]:
    """Per-device figures of several replications (the same topology): peaks maxed, rates and means
    averaged, counts summed."""
    if not runs or not runs[0]:
        return []
    out = []
    for i, first in enumerate(runs[0]):
        rows = [r[i] for r in runs]
        dev = {"name": first["name"], "leg": first["leg"]}
        for f in DEVICE_FIELDS:
            # NaN is stored as null (None) in Parquet and JSON
            vals = [r[f] for r in rows if r.get(f) is not None and not (isinstance(r[f], float) and math.isnan(r[f]))]
            if f == "flows_limit":  # the same device in every replication
                dev[f] = first.get(f)
            elif f == "exhausted_at_s":  # the earliest replication's; null when none filled up
                dev[f] = min(vals) if vals else None
            elif "peak" in f:
                dev[f] = max(vals) if vals else math.nan
            elif f in DEVICE_COUNTS:
                dev[f] = sum(vals)
            else:
                dev[f] = sum(vals) / len(vals) if vals else math.nan
        out.append(dev)
    return out


SERIES_COLUMNS = ["minute", "bucket_s", "active_flows", "keepalive_packets", "bytes", "new_flows"]


def series_frame(series: dict, duration_s: float):
    """The capacity LB's time series of one run, one row per bucket (a minute up to 14-day runs):
    active flows at the bucket's start, keepalive packets, bytes and new flows in it."""
    import pandas as pd

    if not series["devices"]:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    dev = series["devices"][0]
    bucket_s = series["bucket_s"]
    n = _buckets(duration_s, bucket_s)
    marks = np.arange(n) * bucket_s
    return pd.DataFrame({
        "minute": (marks // 60).astype(int),
        "bucket_s": np.full(n, bucket_s),
        "active_flows": active_flows_at(dev["intervals"], marks),
        "keepalive_packets": _per_bucket(dev["keepalive_per_bucket"], n),
        "bytes": _per_bucket(dev["bytes_per_bucket"], n),
        "new_flows": _new_per_bucket(dev["new_flows_per_s"], n, bucket_s),
    })

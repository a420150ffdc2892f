"""Capacity figures for the client-facing LB: keepalive load, bytes, flows, NLCU (an estimate)."""

from __future__ import annotations

import math

import numpy as np

from sim.model.middlebox import SEGMENT_HEADER_BYTES

CAPACITY_FIELDS = (
    "failed_requests_peak_per_s", "keepalive_pps_steady", "keepalive_bytes_per_s", "lb_bytes_per_s",
    "lb_active_flows_mean", "new_flows_per_s", "new_flows_peak_per_s", "nlcu_mean", "nlcu_peak", "lb_cost_per_hour_usd",
)


def active_flows_per_minute(intervals: list[tuple[float, float]], duration_s: float) -> np.ndarray:
    """Flows in the table at each whole minute (the NLB samples active flows per minute)."""
    marks = np.arange(0.0, duration_s, 60.0)
    if not intervals:
        return np.zeros(len(marks), dtype=int)
    iv = np.asarray(intervals, dtype=float)
    starts = np.sort(iv[:, 0])
    ends = np.sort(iv[:, 1])
    return np.searchsorted(starts, marks, side="right") - np.searchsorted(ends, marks, side="right")


def capacity(series: dict, duration_s: float) -> dict:
    """The CAPACITY_FIELDS from a run's LB series (empty series: all NaN)."""
    out = dict.fromkeys(CAPACITY_FIELDS, math.nan)
    out["failed_requests_peak_per_s"] = float(max(series.get("failed_per_s") or [0]))
    if "lb_intervals" not in series:
        return out
    minutes = int(math.ceil(duration_s / 60.0))
    ka = np.zeros(minutes)
    ka[: len(series["keepalive_per_min"][:minutes])] = series["keepalive_per_min"][:minutes]
    by = np.zeros(minutes)
    by[: len(series["bytes_per_min"][:minutes])] = series["bytes_per_min"][:minutes]
    nf = np.asarray(series["new_flows_per_s"] or [0], dtype=float)
    intervals = series["lb_intervals"]
    # steady state: the second half of the run, whole minutes only (keepalive has no warm-up there
    # as long as TCP_KEEPIDLE + ramp is shorter than half the run)
    half = minutes // 2
    full = int(duration_s // 60)
    steady = ka[half:full] if full > half else ka[half:]
    out["keepalive_pps_steady"] = float(steady.mean() / 60.0) if len(steady) else math.nan
    out["keepalive_bytes_per_s"] = float(ka.sum() * SEGMENT_HEADER_BYTES / duration_s)
    out["lb_bytes_per_s"] = float(by.sum() / duration_s)
    # fsum: exact, so the figure does not depend on the order the flows were recorded in
    covered = math.fsum(min(end, duration_s) - start for start, end in intervals if end > start)
    out["lb_active_flows_mean"] = covered / duration_s
    out["new_flows_per_s"] = float(nf.sum() / duration_s)
    out["new_flows_peak_per_s"] = float(nf.max())
    nlcu = series.get("nlcu")
    if nlcu:
        active = active_flows_per_minute(intervals, duration_s)
        new_min = np.add.reduceat(np.pad(nf, (0, max(0, minutes * 60 - len(nf))))[: minutes * 60],
                                  np.arange(0, minutes * 60, 60))
        per_min = np.maximum.reduce([new_min / 60.0 / nlcu["new_flows_per_s"],
                                     active[:minutes] / nlcu["active_flows"],
                                     by * 60.0 / nlcu["bytes_per_hour"]])
        out["nlcu_mean"] = float(per_min.mean())
        out["nlcu_peak"] = float(per_min.max())
        out["lb_cost_per_hour_usd"] = out["nlcu_mean"] * nlcu["price_per_nlcu_hour_usd"] + nlcu["price_per_hour_usd"]
    return out


def series_frame(series: dict, duration_s: float):
    """Per-minute capacity time series of one run: active flows, keepalive packets, bytes, new flows."""
    import pandas as pd

    minutes = int(math.ceil(duration_s / 60.0))
    if "lb_intervals" not in series:
        return pd.DataFrame(columns=["minute", "active_flows", "keepalive_packets", "bytes", "new_flows"])

    def per_min(values, scale=1):
        arr = np.zeros(minutes)
        v = np.asarray(values[: minutes * scale], dtype=float)
        if scale > 1:
            v = np.add.reduceat(np.pad(v, (0, minutes * scale - len(v))), np.arange(0, minutes * scale, scale))
        arr[: len(v)] = v[:minutes]
        return arr

    return pd.DataFrame({
        "minute": np.arange(minutes),
        "active_flows": active_flows_per_minute(series["lb_intervals"], duration_s)[:minutes],
        "keepalive_packets": per_min(series["keepalive_per_min"]),
        "bytes": per_min(series["bytes_per_min"]),
        "new_flows": per_min(series["new_flows_per_s"], 60),
    })

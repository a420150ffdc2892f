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
                 "exhausted_at_s", "ports_peak", "ports_mean", "ports_limit", "headroom_pct", "nlcu_new_flows",
                 "nlcu_active_flows", "nlcu_bytes", "nlcu_dimension")
#: the NLCU dimensions (``nlcu_<dimension>`` per device), in the profile's ``nlcu`` order
NLCU_DIMENSIONS = ("new_flows", "active_flows", "bytes")
#: what a device can run out of: ``<kind>_limit`` against ``<kind>_peak`` (flow table, port budget)
LIMIT_KINDS = ("flows", "ports")
#: device fields summed over replications (the other non-peak ones are averaged)
DEVICE_COUNTS = ("keepalive_packets", "new_flows", "lb_rsts", "connects_rejected")


def pairs(intervals: Iterable[tuple[float, float]] | np.ndarray) -> np.ndarray:
    """Intervals ``(start, end)`` as an array of shape (n, 2): a list of pairs, or an array already
    (a chunk's flows, compacted: sim/execution/dask_run.py)."""
    if isinstance(intervals, np.ndarray):
        return intervals.reshape(-1, 2)
    return np.array(list(intervals), dtype=float).reshape(-1, 2)


def peak_overlap(intervals: Iterable[tuple[float, float]] | np.ndarray) -> int:
    """The most intervals [start, end) open at one instant (an interval that ends when another
    starts is not open with it)."""
    iv = pairs(intervals)
    iv = iv[iv[:, 1] > iv[:, 0]]
    if not len(iv):
        return 0
    t = np.concatenate((iv[:, 0], iv[:, 1]))
    delta = np.concatenate((np.ones(len(iv), dtype=np.int64), np.full(len(iv), -1, dtype=np.int64)))
    order = np.lexsort((delta, t))  # by time; at one instant, ends before starts
    return max(0, int(np.cumsum(delta[order]).max()))


def time_full(intervals: Iterable[tuple[float, float]], limit: int | None,
              duration_s: float) -> tuple[float, float | None]:
    """``(seconds_full, exhausted_at_s)``: the simulated seconds the table held ``limit`` entries
    (its ``max_flows``), and the first time it did (None: never, or no limit). Computed from the
    entries' true lifetimes after the run: a silent expiry is only discovered later (lazily), so
    no counter kept during the run knows when a slot really came free."""
    spans = full_spans(intervals, limit, duration_s)
    return math.fsum(end - start for start, end in spans), (spans[0][0] if spans else None)


def full_spans(intervals: Iterable[tuple[float, float]], limit: int | None,
               duration_s: float) -> list[tuple[float, float]]:
    """The spans ``(start_s, end_s)``, in time order, in which ``limit`` or more of ``intervals``
    were open at once (none without a limit)."""
    if limit is None:
        return []
    events = []
    for start, end in intervals:
        end = min(end, duration_s)
        if end > start:
            events.append((start, 1))
            events.append((end, -1))
    events.sort()
    cur, since = 0, 0.0
    spans = []
    for t, delta in events:
        was_full = cur >= limit
        cur += delta
        if not was_full and cur >= limit:
            since = t
        elif was_full and cur < limit:
            spans.append((since, t))
    if cur >= limit:
        spans.append((since, duration_s))
    return spans


def port_figures(dev: dict, duration_s: float) -> tuple[dict, list[tuple[float, float]]]:
    """A device's port-budget figures and the spans in which a budget was full. With one budget per
    client instance, ``ports_peak`` is the fullest budget's peak and ``ports_limit`` the limit of
    each, so ``headroom_pct`` is the fullest one's; ``ports_mean`` is the mean ports held per budget
    (over the budgets that took a port). All NaN (``ports_limit`` None) without a budget. (``headroom_pct``
    comes from the figures: ``headroom_pct``.)"""
    limit = dev.get("ports_limit")
    if limit is None:
        return {"ports_peak": math.nan, "ports_mean": math.nan, "ports_limit": None}, []
    budgets: dict[int, list[tuple[float, float]]] = {}
    for start, end, budget in dev["port_intervals"]:
        budgets.setdefault(budget, []).append((start, end))
    peak = max((peak_overlap(iv) for iv in budgets.values()), default=0)
    held_s = math.fsum(min(end, duration_s) - start for start, end, _ in dev["port_intervals"] if end > start)
    spans = [span for iv in budgets.values() for span in full_spans(iv, limit, duration_s)]
    return {"ports_peak": peak, "ports_mean": held_s / duration_s / max(1, len(budgets)), "ports_limit": limit}, spans


def union_time(spans: list[tuple[float, float]]) -> tuple[float, float | None]:
    """``(seconds, first_s)`` covered by the union of ``spans`` (None: no span)."""
    if not spans:
        return 0.0, None
    spans = sorted(spans)
    parts = []
    lo, hi = spans[0]
    for start, end in spans[1:]:
        if start > hi:
            parts.append(hi - lo)
            lo, hi = start, end
        else:
            hi = max(hi, end)
    parts.append(hi - lo)
    return math.fsum(parts), spans[0][0]


def active_flows_at(intervals: list[tuple[float, float]], marks: np.ndarray) -> np.ndarray:
    """Flows in the table at each mark (the NLB samples active flows once a minute)."""
    if not len(intervals):
        return np.zeros(len(marks), dtype=int)
    iv = pairs(intervals)
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


def _flows_mean(intervals: list[tuple[float, float]] | np.ndarray, duration_s: float) -> float:
    # fsum: exact, so the figure does not depend on the order the flows were recorded in
    iv = pairs(intervals)
    iv = iv[iv[:, 1] > iv[:, 0]]
    return math.fsum((np.minimum(iv[:, 1], duration_s) - iv[:, 0]).tolist()) / duration_s


def nlcu_dimensions(dev: dict, duration_s: float, bucket_s: float) -> dict[str, np.ndarray] | None:
    """NLB capacity units per bucket in each dimension (NLCU_DIMENSIONS), from the profile's units:
    new flows per second, flows in the table at the bucket's start, bytes per hour (an estimate)."""
    nlcu = dev["nlcu"]
    if not nlcu:
        return None
    n = _buckets(duration_s, bucket_s)
    marks = np.arange(n) * bucket_s
    new = _new_per_bucket(dev["new_flows_per_s"], n, bucket_s)
    active = active_flows_at(dev["intervals"], marks)
    by = _per_bucket(dev["bytes_per_bucket"], n)
    return {"new_flows": new / bucket_s / nlcu["new_flows_per_s"], "active_flows": active / nlcu["active_flows"],
            "bytes": by * (3600.0 / bucket_s) / nlcu["bytes_per_hour"]}


def _nlcu_per_bucket(dev: dict, duration_s: float, bucket_s: float) -> np.ndarray | None:
    """NLB capacity units per bucket: the largest of its three dimensions (an estimate)."""
    dims = nlcu_dimensions(dev, duration_s, bucket_s)
    return None if dims is None else np.maximum.reduce(list(dims.values()))


def nlcu_dimension(fig: dict) -> str | None:
    """The dimension that sets the bill: the one with the largest mean (``nlcu_<dimension>``); None
    without NLCU figures."""
    means: dict[str, float] = {}
    for d in NLCU_DIMENSIONS:
        v = fig.get(f"nlcu_{d}")
        if v is not None and not math.isnan(v):
            means[d] = v
    return max(means, key=means.__getitem__) if means else None


def headroom_pct(fig: dict) -> float | None:
    """How much of its limit a device had left at its peak, in percent: (limit - peak) / limit x 100,
    for every kind of limit it has (``flows_limit``, ``ports_limit``: LIMIT_KINDS); the tightest one.
    None when it has no limit."""
    pcts = []
    for kind in LIMIT_KINDS:
        limit, peak = fig.get(f"{kind}_limit"), fig.get(f"{kind}_peak")
        if limit and peak is not None and not (isinstance(peak, float) and math.isnan(peak)):
            pcts.append((limit - peak) / limit * 100.0)
    return min(pcts) if pcts else None


def device_figures(dev: dict, duration_s: float, bucket_s: float) -> dict:
    """One middlebox's capacity figures for one run (DEVICE_FIELDS)."""
    dims = nlcu_dimensions(dev, duration_s, bucket_s)
    per_bucket = None if dims is None else np.maximum.reduce(list(dims.values()))
    limit = dev.get("flows_limit")
    seconds_full, exhausted_at_s = time_full(dev["intervals"], limit, duration_s)
    ports, port_spans = port_figures(dev, duration_s)
    if port_spans:  # full: the flow table or a port budget (docs/outputs.md)
        seconds_full, exhausted_at_s = union_time(full_spans(dev["intervals"], limit, duration_s) + port_spans)
    fig = {
        "name": dev["name"], "leg": dev["leg"],
        "flows_peak": peak_overlap(dev["intervals"]),
        "flows_mean": _flows_mean(dev["intervals"], duration_s),
        "new_flows_peak_per_s": float(max(dev["new_flows_per_s"].values(), default=0)),
        "keepalive_pps": dev["keepalive_packets"] / duration_s,
        "nlcu_mean": float(per_bucket.mean()) if per_bucket is not None else math.nan,
        "keepalive_packets": dev["keepalive_packets"], "new_flows": dev["new_flows"], "lb_rsts": dev["lb_rsts"],
        "flows_limit": limit, "connects_rejected": dev.get("connects_rejected", 0),
        "seconds_full": seconds_full, "exhausted_at_s": exhausted_at_s, **ports,
        **{f"nlcu_{d}": float(dims[d].mean()) if dims is not None else math.nan for d in NLCU_DIMENSIONS},
    }
    fig["headroom_pct"] = headroom_pct(fig)
    fig["nlcu_dimension"] = nlcu_dimension(fig)
    return fig


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
            if f.endswith("_limit"):  # the same device in every replication
                dev[f] = first.get(f)
            elif f in ("headroom_pct", "nlcu_dimension"):
                continue  # from the combined figures, below
            elif f == "exhausted_at_s":  # the earliest replication's; null when none filled up
                dev[f] = min(vals) if vals else None
            elif "peak" in f:
                dev[f] = max(vals) if vals else math.nan
            elif f in DEVICE_COUNTS:
                dev[f] = sum(vals)
            else:
                dev[f] = sum(vals) / len(vals) if vals else math.nan
        dev["headroom_pct"] = headroom_pct(dev)
        dev["nlcu_dimension"] = nlcu_dimension(dev)
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

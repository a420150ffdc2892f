"""The run summary (DESIGN §3), computed from records by pure functions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

from sim.model.records import FAILURE_REASONS, OUTCOMES
from sim.report.capacity import CAPACITY_FIELDS, capacity

#: failed requests by reason, as the client saw them (downstream leg)
REASON_FIELDS = tuple(f"{r}s" for r in FAILURE_REASONS)

SUMMARY_FIELDS = (
    "connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests",
    "failed_request_rate", "requests_in_flight_at_end", "hang_s_total", "zombie_s_total", "zombies_peak",
    "detect_s_p50", "detect_s_max", "keepalive_packets", "keepalive_pps", "lb_rsts",
    "lb_active_flows_peak", "new_flows", "min_slack_s", "at_risk_gaps", *REASON_FIELDS, *CAPACITY_FIELDS,
    "outcomes",
)


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


def _median(values: list[float]) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def summarize_one(rec, duration_s: float) -> dict:
    """Summary of one replication."""
    c = rec.columns
    n = len(c["conn_id"])
    down = [i for i in range(n) if c["leg"][i] == "downstream"]
    silent = sum(1 for x in c["silent_drop"] if x)
    requests = sum(c["requests"][i] for i in down)
    failed = sum(c["failed_requests"][i] for i in down)
    detects = [x for key in ("client_detect_s", "server_detect_s") for x in c[key] if not math.isnan(x)]
    peaks = []
    for side in ("client_zombie_s", "server_zombie_s"):
        ivs = [(c["drop_at_s"][i], c["drop_at_s"][i] + c[side][i]) for i in range(n) if c[side][i] > 0]
        peaks.append(peak_overlap(ivs))
    slack = [x for x in c["min_slack_s"] if not math.isinf(x)]
    ka = rec.counters["keepalive_packets"]
    return {
        "connections": len(down),
        "silent_drops": silent,
        "silent_drop_rate": silent / n if n else 0.0,
        "requests": requests,
        "failed_requests": failed,
        "failed_request_rate": failed / requests if requests else 0.0,
        "requests_in_flight_at_end": sum(c["requests_in_flight_at_end"][i] for i in down),
        "hang_s_total": sum(c["hang_s"][i] for i in down),
        "zombie_s_total": sum(c["client_zombie_s"]) + sum(c["server_zombie_s"]),
        "zombies_peak": max(peaks) if peaks else 0,
        "detect_s_p50": _median(detects),
        "detect_s_max": max(detects) if detects else math.nan,
        "keepalive_packets": ka,
        "keepalive_pps": ka / duration_s,
        "lb_rsts": rec.counters["lb_rsts"],
        "lb_active_flows_peak": peak_overlap(rec.flow_intervals),
        "new_flows": rec.counters["new_flows"],
        "min_slack_s": min(slack) if slack else math.nan,
        "at_risk_gaps": sum(c["at_risk_gaps"]),
        **{f: sum(c[f][i] for i in down) for f in REASON_FIELDS},
        **capacity(rec.series, duration_s),
        "outcomes": dict(sorted(Counter(c["outcome"]).items())),
        "_detects": detects,
    }


def combine(per_rep: list[dict], runs: list[dict]) -> dict:
    """Counts summed over replications; rates and peaks averaged / maxed (DESIGN §3)."""
    out: dict = {}
    len(per_rep)
    for key in SUMMARY_FIELDS:
        vals = [s[key] for s in per_rep]
        if key == "outcomes":
            total: Counter = Counter()
            for v in vals:
                total.update(v)
            out[key] = {o: total[o] for o in OUTCOMES if total[o]}
        elif key in ("silent_drop_rate", "failed_request_rate", "keepalive_pps") or (
                key in CAPACITY_FIELDS and "peak" not in key):
            finite = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
            out[key] = sum(finite) / len(finite) if finite else math.nan
        elif "peak" in key or key == "detect_s_max":
            finite = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
            out[key] = max(finite) if finite else math.nan
        elif key == "min_slack_s":
            finite = [v for v in vals if not math.isnan(v)]
            out[key] = min(finite) if finite else math.nan
        elif key == "detect_s_p50":  # over every detection time of every replication
            out[key] = _median([d for s in per_rep for d in s.get("_detects", [])])
        else:
            out[key] = sum(vals)
    out["run"] = {
        "events": sum(r["events"] for r in runs),
        "wall_s": round(sum(r["wall_s"] for r in runs), 3),
        "version": runs[0]["version"] if runs else "",
    }
    return out

"""The run summary (DESIGN §3), computed from records by pure functions."""

from __future__ import annotations

import math
from collections import Counter

from sim.facts.names import CONNECT_OUTCOMES, FAILURE_REASONS, OUTCOMES, REASON_COLUMNS
from sim.metrics.capacity import CAPACITY_FIELDS, capacity, combine_devices, devices, peak_overlap

#: failed requests by reason, as the client saw them (downstream leg): they sum to failed_requests
REASON_FIELDS = REASON_COLUMNS
#: counts on the downstream leg besides the reasons: GOAWAY frames, Envoy's 503 answers
OTHER_FAILURE_FIELDS = ("goaways", "envoy_503s")

SUMMARY_FIELDS = (
    "connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests",
    "failed_request_rate", "requests_in_flight_at_end", "hang_s_total", "hang_s_open_total", "zombie_s_total",
    "zombies_peak", "detect_s_p50", "detect_s_max", "keepalive_packets", "keepalive_pps", "lb_rsts",
    "new_flows", "min_slack_s", "at_risk_gaps", *REASON_FIELDS, *OTHER_FAILURE_FIELDS, *CAPACITY_FIELDS,
    "failure_reasons", "devices", "outcomes", "connect_failures", "connect_outcomes",
)
#: connect outcomes that are failures (kernel-lifecycle.md R43, R44; Envoy's connect_timeout)
CONNECT_FAILURES = ("connect_timeout", "connect_refused")


def failure_reasons(row) -> dict[str, int]:
    """``{reason: count}`` for every reason, from a row (or summary) with the REASON_FIELDS."""
    return {r: int(row[f]) for r, f in zip(FAILURE_REASONS, REASON_FIELDS, strict=True)}


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
    out = {
        "connections": len(down),
        "silent_drops": silent,
        "silent_drop_rate": silent / n if n else 0.0,
        "requests": requests,
        "failed_requests": failed,
        "failed_request_rate": failed / requests if requests else 0.0,
        "requests_in_flight_at_end": sum(c["requests_in_flight_at_end"][i] for i in down),
        "hang_s_total": sum(c["hang_s"][i] for i in down),
        "hang_s_open_total": sum(c["hang_s_open"][i] for i in down),
        "zombie_s_total": sum(c["client_zombie_s"]) + sum(c["server_zombie_s"]),
        "zombies_peak": max(peaks) if peaks else 0,
        "detect_s_p50": _median(detects),
        "detect_s_max": max(detects) if detects else math.nan,
        "keepalive_packets": ka,
        "keepalive_pps": ka / duration_s,
        "lb_rsts": rec.counters["lb_rsts"],
        "new_flows": rec.counters["new_flows"],
        "min_slack_s": min(slack) if slack else math.nan,
        "at_risk_gaps": sum(c["at_risk_gaps"]),
        **{f: sum(c[f][i] for i in down) for f in REASON_FIELDS + OTHER_FAILURE_FIELDS},
        **capacity(rec.series, duration_s),
        "devices": devices(rec.series, duration_s),
        "outcomes": dict(sorted(Counter(c["outcome"]).items())),
        # every leg's connections: a failed upstream connect is a connect failure too
        "connect_failures": sum(1 for o in c["connect_outcome"] if o in CONNECT_FAILURES),
        "connect_outcomes": dict(sorted(Counter(c["connect_outcome"]).items())),
        "_detects": detects,
    }
    out["failure_reasons"] = failure_reasons(out)
    return out


def combine(per_rep: list[dict], runs: list[dict]) -> dict:
    """Counts summed over replications; rates and peaks averaged / maxed (DESIGN §3)."""
    out: dict = {}
    for key in SUMMARY_FIELDS:
        vals = [s[key] for s in per_rep]
        if key == "outcomes":
            total: Counter = Counter()
            for v in vals:
                total.update(v)
            out[key] = {o: total[o] for o in OUTCOMES if total[o]}
        elif key == "connect_outcomes":
            total = Counter()
            for v in vals:
                total.update(v)
            out[key] = {o: total[o] for o in CONNECT_OUTCOMES if total[o]}
        elif key == "devices":
            out[key] = combine_devices(vals)
        elif key == "failure_reasons":
            continue  # from the summed reason fields, below
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
    out["failure_reasons"] = failure_reasons(out)
    out["run"] = {
        "events": sum(r["events"] for r in runs),
        "wall_s": round(sum(r["wall_s"] for r in runs), 3),
        "version": runs[0]["version"] if runs else "",
    }
    return out

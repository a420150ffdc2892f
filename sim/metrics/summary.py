"""The run summary (DESIGN §3), computed from records by pure functions."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from sim.facts.names import CLASS_COLUMN, COLUMNS, CONNECT_OUTCOMES, FAILURE_REASONS, OUTCOMES, REASON_COLUMNS
from sim.metrics.capacity import CAPACITY_FIELDS, capacity, combine_devices, devices, peak_overlap

#: failed requests by reason, as the client saw them (downstream leg): they sum to failed_requests
REASON_FIELDS = REASON_COLUMNS
#: counts on the downstream leg besides the reasons: GOAWAY frames, Envoy's 503 answers
OTHER_FAILURE_FIELDS = ("goaways", "envoy_503s")

SUMMARY_FIELDS = (
    "connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests",
    "failed_request_rate", "requests_in_flight_at_end", "hang_s_total", "hang_s_open_total", "zombie_s_total",
    "zombies_peak", "detect_s_p50", "detect_s_max", "keepalive_packets", "keepalive_pps", "lb_rsts",
    "new_flows", "fault_drops", "fault_rsts", "fault_counts", "min_slack_s", "at_risk_gaps",
    *REASON_FIELDS, *OTHER_FAILURE_FIELDS, *CAPACITY_FIELDS,
    "failure_reasons", "devices", "outcomes", "connect_failures", "connect_outcomes",
)
#: the record columns (an empty class's figures are made from none of them)
ROW_COLUMNS = COLUMNS
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


#: the figures each traffic class gets in ``by_class`` (docs/outputs.md#traffic-classes): those of its
#: own connection rows. What the devices count (keepalive packets, flows, bytes, NLCU) is of the
#: devices, which every class shares: those stay fleet-wide.
CLASS_FIELDS = (
    "connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests", "failed_request_rate",
    "requests_in_flight_at_end", "hang_s_total", "hang_s_open_total", "zombie_s_total", "zombies_peak",
    "detect_s_p50", "detect_s_max", "keepalive_probes", "min_slack_s", "at_risk_gaps",
    *REASON_FIELDS, *OTHER_FAILURE_FIELDS, "failure_reasons", "outcomes", "connect_failures", "connect_outcomes",
)


def _row_figures(c: dict, rows: list[int]) -> dict:
    """The figures of the connection rows ``rows`` of record columns ``c``."""
    down = [i for i in rows if c["leg"][i] == "downstream"]
    silent = sum(1 for i in rows if c["silent_drop"][i])
    requests = sum(c["requests"][i] for i in down)
    failed = sum(c["failed_requests"][i] for i in down)
    detects = [x for key in ("client_detect_s", "server_detect_s") for i in rows if not math.isnan(x := c[key][i])]
    peaks = []
    for side in ("client_zombie_s", "server_zombie_s"):
        ivs = [(c["drop_at_s"][i], c["drop_at_s"][i] + c[side][i]) for i in rows if c[side][i] > 0]
        peaks.append(peak_overlap(ivs))
    slack = [x for i in rows if not math.isinf(x := c["min_slack_s"][i])]
    out = {
        "connections": len(down),
        "silent_drops": silent,
        "silent_drop_rate": silent / len(rows) if rows else 0.0,
        "requests": requests,
        "failed_requests": failed,
        "failed_request_rate": failed / requests if requests else 0.0,
        "requests_in_flight_at_end": sum(c["requests_in_flight_at_end"][i] for i in down),
        "hang_s_total": sum(c["hang_s"][i] for i in down),
        "hang_s_open_total": sum(c["hang_s_open"][i] for i in down),
        "zombie_s_total": sum(c["client_zombie_s"][i] for i in rows) + sum(c["server_zombie_s"][i] for i in rows),
        "zombies_peak": max(peaks) if peaks else 0,
        "detect_s_p50": _median(detects),
        "detect_s_max": max(detects) if detects else math.nan,
        "keepalive_probes": sum(c["keepalive_probes"][i] for i in rows),
        "min_slack_s": min(slack) if slack else math.nan,
        "at_risk_gaps": sum(c["at_risk_gaps"][i] for i in rows),
        **{f: sum(c[f][i] for i in down) for f in REASON_FIELDS + OTHER_FAILURE_FIELDS},
        "outcomes": dict(sorted(Counter(c["outcome"][i] for i in rows).items())),
        # every leg's connections: a failed upstream connect is a connect failure too
        "connect_failures": sum(1 for i in rows if c["connect_outcome"][i] in CONNECT_FAILURES),
        "connect_outcomes": dict(sorted(Counter(c["connect_outcome"][i] for i in rows).items())),
        "_detects": detects,
    }
    out["failure_reasons"] = failure_reasons(out)
    return out


def summarize_one(rec, duration_s: float) -> dict:
    """Summary of one replication, with ``by_class``: each traffic class's CLASS_FIELDS (its rows')."""
    c = rec.columns
    fleet = _row_figures(c, list(range(len(c["conn_id"]))))
    out = {k: v for k, v in fleet.items() if k != "keepalive_probes"}
    ka = rec.counters["keepalive_packets"]
    out.update({
        "keepalive_packets": ka,
        "keepalive_pps": ka / duration_s,
        "lb_rsts": rec.counters["lb_rsts"],
        "new_flows": rec.counters["new_flows"],
        "fault_drops": rec.counters["fault_drops"],
        "fault_rsts": rec.counters["fault_rsts"],
        "fault_counts": [{"fault": f"faults[{i}]", "drops": d, "rsts": r}
                         for i, (d, r) in enumerate(rec.series["faults"])],
        **capacity(rec.series, duration_s),
        "devices": devices(rec.series, duration_s),
    })
    names = set(c[CLASS_COLUMN])
    if len(names) == 1:  # one class: its figures are the fleet's (no second pass over the rows)
        out["by_class"] = {names.pop(): fleet}
        return out
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(c[CLASS_COLUMN]):
        rows.setdefault(name, []).append(i)
    out["by_class"] = {name: _row_figures(c, r) for name, r in sorted(rows.items())}
    return out


def combine(per_rep: list[dict], runs: list[dict]) -> dict:
    """Counts summed over replications; rates and peaks averaged / maxed (DESIGN §3); each class of
    ``by_class`` alike (a class without a row in a replication counts as zeros there)."""
    out = _combine(per_rep, SUMMARY_FIELDS)
    out["by_class"] = combine_classes([s.get("by_class", {}) for s in per_rep])
    out["run"] = {
        "events": sum(r["events"] for r in runs),
        "wall_s": round(sum(r["wall_s"] for r in runs), 3),
        "version": runs[0]["version"] if runs else "",
    }
    return out


def combine_classes(per_rep: list[dict[str, dict]]) -> dict[str, dict]:
    """Each traffic class's figures (``by_class`` of each replication) combined over replications
    as the summary's are (a class without a row in a replication counts as zeros there)."""
    names = sorted({name for s in per_rep for name in s})
    empty = _row_figures({k: [] for k in ROW_COLUMNS}, [])
    return {name: _combine([s.get(name, empty) for s in per_rep], CLASS_FIELDS) for name in names}


def _combine(per_rep: list[dict], keys: tuple[str, ...]) -> dict:
    out: dict = {}
    for key in keys:
        vals: list[Any] = [math.nan if s[key] is None else s[key] for s in per_rep]  # JSON's null: a stored NaN
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
        elif key == "fault_counts":  # per fault, summed over replications
            out[key] = [{**each[0], "drops": sum(f["drops"] for f in each), "rsts": sum(f["rsts"] for f in each)}
                        for each in zip(*vals, strict=True)]
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
            if any("_detects" in s for s in per_rep):
                out[key] = _median([d for s in per_rep for d in s.get("_detects", [])])
            else:  # stored replications keep their medians only: the median of those
                out[key] = _median([v for v in vals if not math.isnan(v)])
        else:
            out[key] = sum(vals)
    out["failure_reasons"] = failure_reasons(out)
    return out

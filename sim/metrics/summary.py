"""The run summary (DESIGN §3), computed from records by pure functions."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from sim.facts.names import CONNECT_OUTCOMES, FAILURE_REASONS, OUTCOMES, REASON_COLUMNS
from sim.metrics.capacity import CAPACITY_FIELDS, capacity, combine_devices, devices
from sim.metrics.totals import OTHER_FAILURE_FIELDS, RowTotals, median

#: failed requests by reason, as the client saw them (downstream leg): they sum to failed_requests
REASON_FIELDS = REASON_COLUMNS

SUMMARY_FIELDS = (
    "connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests",
    "failed_request_rate", "requests_in_flight_at_end", "hang_s_total", "hang_s_open_total", "zombie_s_total",
    "zombies_peak", "detect_s_p50", "detect_s_max", "keepalive_packets", "keepalive_pps", "lb_rsts",
    "new_flows", "fault_drops", "fault_rsts", "fault_counts", "min_slack_s", "at_risk_gaps",
    *REASON_FIELDS, *OTHER_FAILURE_FIELDS, *CAPACITY_FIELDS,
    "failure_reasons", "devices", "outcomes", "connect_failures", "connect_outcomes",
)


def failure_reasons(row) -> dict[str, int]:
    """``{reason: count}`` for every reason, from a row (or summary) with the REASON_FIELDS."""
    return {r: int(row[f]) for r, f in zip(FAILURE_REASONS, REASON_FIELDS, strict=True)}


#: what the devices count, per traffic class (CLASS_FIELDS): each device counts a flow in the class of
#: its connection (sim.model.ledger), so these are the class's own traffic's load on the devices
CLASS_DEVICE_FIELDS = ("keepalive_packets", "keepalive_pps", "lb_rsts", "new_flows", *CAPACITY_FIELDS)
#: the figures each traffic class gets in ``by_class`` (docs/outputs.md#traffic-classes): those of its
#: own connection rows, and what the devices counted of its flows (CLASS_DEVICE_FIELDS). The counts add
#: up to the fleet's; NLCU and peaks do not (each is a maximum of its own).
CLASS_FIELDS = (
    "connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests", "failed_request_rate",
    "requests_in_flight_at_end", "hang_s_total", "hang_s_open_total", "zombie_s_total", "zombies_peak",
    "detect_s_p50", "detect_s_max", "keepalive_probes", "min_slack_s", "at_risk_gaps",
    *REASON_FIELDS, *OTHER_FAILURE_FIELDS, "failure_reasons", "outcomes", "connect_failures", "connect_outcomes",
    *CLASS_DEVICE_FIELDS,
)


def class_series(series: dict, name: str) -> dict:
    """A run's series as traffic class ``name``'s traffic alone made it: each device's record with
    the class's counts and series (its ``classes`` entry: a world of two or more classes; a world of
    one class, the device's own), and the class's failed requests per second."""
    devs = [{**d, **d["classes"][name]} if name in d.get("classes", {}) else d for d in series["devices"]]
    failed = series.get("class_failed_per_s", {}).get(name, series["failed_per_s"])
    return {**series, "devices": devs, "failed_per_s": failed}


def class_device_figures(series: dict | None, duration_s: float) -> dict:
    """A traffic class's CLASS_DEVICE_FIELDS from its ``class_series``: as the summary's, summed over
    its devices and of the capacity LB. None: a class with no flow here (zeros; NaN for the capacity
    LB's figures)."""
    if series is None:
        return {"keepalive_packets": 0, "keepalive_pps": 0.0, "lb_rsts": 0, "new_flows": 0,
                **dict.fromkeys(CAPACITY_FIELDS, math.nan)}
    devs = series["devices"]
    ka = sum(d["keepalive_packets"] for d in devs)
    return {"keepalive_packets": ka, "keepalive_pps": ka / duration_s, "lb_rsts": sum(d["lb_rsts"] for d in devs),
            "new_flows": sum(d["new_flows"] for d in devs), **capacity(series, duration_s)}


def class_figures(totals: RowTotals, devices: dict | None = None) -> dict:
    """A traffic class's CLASS_FIELDS (and its detection times, for the median over replications)
    from the totals of its rows and its ``class_device_figures`` (None: zeros and NaN)."""
    t = totals.fields()
    out = {k: t[k] for k in CLASS_FIELDS if k not in CLASS_DEVICE_FIELDS and k != "failure_reasons"}
    out["failure_reasons"] = failure_reasons(out)
    out.update(devices if devices is not None else class_device_figures(None, 1.0))
    out["_detects"] = t["_detects"]
    return out


def summarize_one(rec, duration_s: float) -> dict:
    """Summary of one replication, with ``by_class``: each traffic class's CLASS_FIELDS (its rows')."""
    return summary_from(RowTotals().add(rec.columns), rec.counters, rec.series, duration_s)


def summary_from(totals: RowTotals, counters: dict, series: dict, duration_s: float) -> dict:
    """Summary of one replication from its rows' totals (RowTotals: of every row, or merged over
    chunks), its counters and its series (merged over chunks: sim.model.scenario.merge)."""
    t = totals.fields()
    ka = counters["keepalive_packets"]
    out = {
        **{f: t[f] for f in ("connections", "silent_drops", "silent_drop_rate", "requests", "failed_requests",
                             "failed_request_rate", "requests_in_flight_at_end", "hang_s_total", "hang_s_open_total",
                             "zombie_s_total", "zombies_peak", "detect_s_p50", "detect_s_max")},
        "keepalive_packets": ka,
        "keepalive_pps": ka / duration_s,
        "lb_rsts": counters["lb_rsts"],
        "new_flows": counters["new_flows"],
        "fault_drops": counters["fault_drops"],
        "fault_rsts": counters["fault_rsts"],
        "fault_counts": [{"fault": f"faults[{i}]", "drops": d, "rsts": r}
                         for i, (d, r) in enumerate(series["faults"])],
        "min_slack_s": t["min_slack_s"],
        "at_risk_gaps": t["at_risk_gaps"],
        **{f: t[f] for f in REASON_FIELDS + OTHER_FAILURE_FIELDS},
        **capacity(series, duration_s),
        "devices": devices(series, duration_s),
        **{f: t[f] for f in ("outcomes", "connect_failures", "connect_outcomes", "_detects")},
    }
    out["failure_reasons"] = failure_reasons(out)
    # each traffic class's own rows and flows (docs/outputs.md#traffic-classes); one class: the fleet's
    out["by_class"] = {name: class_figures(t, class_device_figures(class_series(series, name), duration_s))
                       for name, t in sorted(totals.classes().items())}
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
    empty = class_figures(RowTotals())
    # a class stored before its device figures were kept has none (NaN)
    unknown = dict.fromkeys(CLASS_DEVICE_FIELDS, math.nan)
    return {name: _combine([{**unknown, **s.get(name, empty)} for s in per_rep], CLASS_FIELDS) for name in names}


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
                out[key] = median([d for s in per_rep for d in s.get("_detects", [])])
            else:  # stored replications keep their medians only: the median of those
                out[key] = median([v for v in vals if not math.isnan(v)])
        else:
            out[key] = sum(vals)
    out["failure_reasons"] = failure_reasons(out)
    return out

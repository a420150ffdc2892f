"""Verdicts by traffic class (docs/outputs.md#traffic-classes): each class's figures folded over the
conditions of a knob setting, and the long tables (one row per setting or point and class) that the
sweep's text output and report.md show when a fleet has several classes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from sim.metrics.summary import combine_classes

#: the columns of a by-class table, after the swept keys (a sampled fleet adds CLASS_SAMPLED): the
#: class's rows', then the load its flows put on the devices (``nlcu_mean`` only with an NLCU profile)
CLASS_COLUMNS = ["class", "safe", "silent_drops", "failed_requests", "hang_s_total", "zombie_s_total",
                 "connect_failures", "connections", "keepalive_pps", "new_flows", "nlcu_mean"]
CLASS_SAMPLED = ["expected_drops_per_day", "expected_drops_per_day_ci95", "sample_fraction"]
#: per class, summed over a knob setting's conditions (the rest: ``fold_classes``)
_SUMMED = ("silent_drops", "failed_requests", "hang_s_total", "zombie_s_total", "connect_failures", "connections",
           "new_flows")
#: per class, the largest over a knob setting's conditions (rates: the busiest condition's)
_WORST = ("keepalive_pps", "nlcu_mean")


def point_classes(per_rep: list[dict[str, dict]]) -> dict[str, dict]:
    """A grid point's classes from its replications' ``by_class``: combined as the summary's
    (sim.metrics.summary.combine_classes), a sampled fleet's fleet-day estimate and interval averaged
    over replications as the point's own are, and each class's own ``safe``: none of its flows
    silently dropped and none of its connects failed (the grid point's rule, on the class's rows)."""
    out = combine_classes(per_rep)
    for name, f in out.items():
        each = [r[name] for r in per_rep if name in r]
        for k in ("expected_drops_per_day", "sample_fraction"):
            if any(k in e for e in each):
                f[k] = float(np.mean([e.get(k) or 0.0 for e in each]))
        cis = [e["expected_drops_per_day_ci95"] for e in each if e.get("expected_drops_per_day_ci95")]
        if cis:
            f["expected_drops_per_day_ci95"] = np.mean(np.array(cis), axis=0).tolist()
        f["safe"] = f["silent_drops"] == 0 and not f.get("connect_failures")
    return out


def fold_classes(points: list[dict[str, dict]]) -> dict[str, dict]:
    """Each class of a knob setting, over its grid points (``by_class`` with ``safe`` each): counts
    summed, safe only when safe under every condition, the worst condition's fleet-day estimate and
    its interval bound by bound."""
    out: dict[str, dict] = {}
    for name in sorted({n for p in points for n in p}):
        each = [p[name] for p in points if name in p]
        f: dict[str, Any] = {k: sum(e.get(k) or 0 for e in each) for k in _SUMMED}
        for k in _WORST:
            vals = [e[k] for e in each if e.get(k) is not None and not math.isnan(e[k])]
            f[k] = max(vals) if vals else math.nan
        f["safe"] = all(e.get("safe", False) for e in each)
        if any("expected_drops_per_day" in e for e in each):
            f["expected_drops_per_day"] = max(e.get("expected_drops_per_day") or 0.0 for e in each)
            cis = [e["expected_drops_per_day_ci95"] for e in each if e.get("expected_drops_per_day_ci95")]
            f["expected_drops_per_day_ci95"] = np.max(np.array(cis), axis=0).tolist() if cis else None
            f["sample_fraction"] = min(e.get("sample_fraction") or 1.0 for e in each)
        out[name] = f
    return out


def several_classes(df: pd.DataFrame) -> bool:
    """Does any row of a verdict table break down into two or more classes?"""
    return "by_class" in df and any(isinstance(v, dict) and len(v) > 1 for v in df["by_class"])


def class_table(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per row of ``df`` (a knob setting or a grid point) and class: ``keys``, then
    CLASS_COLUMNS (and CLASS_SAMPLED for a sampled fleet)."""
    rows = []
    for _, r in df.iterrows():
        for name, f in (r.get("by_class") or {}).items():
            rows.append({**{k: r[k] for k in keys}, "class": name,
                         **{c: f.get(c) for c in CLASS_COLUMNS[1:] + CLASS_SAMPLED}})
    table = pd.DataFrame(rows, columns=keys + CLASS_COLUMNS + CLASS_SAMPLED)
    if table["expected_drops_per_day"].isna().all():
        table = table.drop(columns=CLASS_SAMPLED)
    if table["nlcu_mean"].isna().all():  # no NLCU profile on the capacity LB
        table = table.drop(columns=["nlcu_mean"])
    return table


def class_lines(table: pd.DataFrame, knobs: list[str]) -> list[str]:
    """The sweep's by-class sub-table, as text lines (none for a fleet of one class): per knob
    setting and class, its verdict, drops and failed requests (and a sampled fleet's drops per
    fleet-day with their interval); then the load its flows put on the devices: keepalive packets per
    second, new flows and (with an NLCU profile) the capacity LB's mean NLCU."""
    from sim.report.fmt import fmt, fmt_param

    if not several_classes(table):
        return []
    keys = knobs or ["point_id"]
    long = class_table(table, keys)
    sampled = "expected_drops_per_day" in long
    heads = [*keys, "class", "safe", "drops", "failed"] + (["drops/day [95%]"] if sampled else [])
    rows = [[fmt_param(r[k]) for k in keys] + [str(r["class"]), "yes" if r["safe"] else "NO",
                                               fmt(r["silent_drops"]), fmt(r["failed_requests"])]
            + ([f"{fmt(r['expected_drops_per_day'])} {fmt(r['expected_drops_per_day_ci95'])}"] if sampled else [])
            for _, r in long.iterrows()]
    # the load each class's flows put on the devices: a table of its own, after the verdicts
    nlcu = "nlcu_mean" in long
    load = [[fmt_param(r[k]) for k in keys] + [str(r["class"]), fmt(r["keepalive_pps"]), fmt(r["new_flows"])]
            + ([fmt(r["nlcu_mean"])] if nlcu else []) for _, r in long.iterrows()]
    return (["by traffic class:", *_aligned(heads, rows)]
            + ["device load by traffic class (each class's flows alone):",
               *_aligned([*keys, "class", "keepalive pps", "new flows"] + (["NLCU mean"] if nlcu else []), load)])


def _aligned(heads: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
    return ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in [heads, *rows]]


def class_summary_lines(s: dict) -> list[str]:
    """``run``'s lines for each traffic class (none for one class): its connections, drops, requests
    and failures, a sampled fleet's drops per fleet-day with their interval, and the keepalive packets
    per second and new flows its flows made at the devices."""
    from sim.report.fmt import fmt

    by = s.get("by_class") or {}
    if len(by) < 2:
        return []
    out = []
    for name, f in by.items():
        day = (f"; {fmt(f['expected_drops_per_day'])} {fmt(f.get('expected_drops_per_day_ci95'))} drops per "
               "fleet-day" if "expected_drops_per_day" in f else "")
        load = (f"; {fmt(f['keepalive_pps'])} keepalive pkt/s, {fmt(f['new_flows'])} new flows at the devices"
                if "keepalive_pps" in f else "")
        out.append(f"  class {name}: {fmt(f['connections'])} connections, {fmt(f['silent_drops'])} silent drops, "
                   f"{fmt(f['requests'])} requests, {fmt(f['failed_requests'])} failed{day}{load}")
    return out

"""report.md's "Limits" section (issue 16 points 4 and 5): per middlebox with a limit (a flow table,
``flows_limit``; a port budget, ``ports_limit``) its figures per grid point, a plot of what it held
over time against the limit (from limits.parquet, written by the sweep) and the exhaustion point of
each swept key: the value from which the limit is reached while its neighbour stays below."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sim.metrics.capacity import LIMIT_KINDS
from sim.report import plots
from sim.report.fmt import fmt, fmt_param

#: what each kind of limit is called in words
LIMIT_WORDS = {"flows": "flow table", "ports": "port budget"}
#: the per-device figures the section shows, after ``<kind>_peak`` and ``<kind>_limit``
FIGURES = ("headroom_pct", "connects_rejected", "seconds_full", "exhausted_at_s")


def row_devices(v: Any) -> list[dict]:
    """A row's ``devices`` (JSON text from an older folder, or decoded)."""
    if isinstance(v, str):
        return json.loads(v)
    if hasattr(v, "tolist"):  # Arrow's arrays
        v = v.tolist()
    return list(v) if isinstance(v, (list, tuple)) else []


def limited(pp: pd.DataFrame) -> list[tuple[int, str, str, str]]:
    """Every (place in the path, name, leg, kind) that has a limit at some grid point, path order."""
    found: dict[tuple[int, str], tuple[str, str]] = {}
    for devs in pp["devices"] if "devices" in pp else []:
        for i, d in enumerate(row_devices(devs)):
            for kind in LIMIT_KINDS:
                if d.get(f"{kind}_limit"):
                    found.setdefault((i, kind), (d["name"], d["leg"]))
    return [(i, *found[(i, kind)], kind) for i, kind in sorted(found)]


def _figures(pp: pd.DataFrame, index: int, kind: str) -> pd.DataFrame:
    """One device's figures per grid point where it is limited (combined over replications)."""
    rows = []
    for _, r in pp.iterrows():
        devs = row_devices(r["devices"])
        d = devs[index] if index < len(devs) else {}
        if d.get(f"{kind}_limit"):
            rows.append({"point_id": r["point_id"], "_row": r, **{f: d.get(f) for f in (f"{kind}_peak",
                                                                                         f"{kind}_limit", *FIGURES)}})
    return pd.DataFrame(rows)


def _exhausted(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def worst(figs: pd.DataFrame) -> pd.Series:
    """The grid point whose run the section plots: most connects rejected, then most seconds full,
    then least headroom; the first in grid order among equals."""
    key = figs.assign(_h=figs["headroom_pct"].map(lambda v: math.inf if v is None or pd.isna(v) else v))
    order = key.sort_values(["connects_rejected", "seconds_full", "_h"], ascending=[False, False, True],
                            kind="stable")
    return order.iloc[0]


def exhaustion_points(figs: pd.DataFrame, keys: list[str], what: str) -> list[str]:
    """For each swept key with several values, within each combination of the other keys: where the
    limit is reached (``exhausted_at_s`` set) and the nearest value that stays below, with its
    headroom. ``what``: ``the flow table of aws-nlb-tcp``. Nothing when every value fills, or none."""
    out = []
    for key in keys:
        others = [k for k in keys if k != key]
        rows = [(r["_row"], _exhausted(r["exhausted_at_s"]), r["headroom_pct"]) for _, r in figs.iterrows()]
        groups: dict[tuple, list] = {}
        for row, full, head in rows:
            groups.setdefault(tuple(fmt_param(row[k]) for k in others), []).append((row[key], full, head))
        for ctx, vals in groups.items():
            if len({fmt_param(v) for v, _, _ in vals}) < 2 or len({full for _, full, _ in vals}) < 2:
                continue
            at = "".join(f" at {k} = {c}" for k, c in zip(others, ctx, strict=True)) if others else ""
            out.append(_sentence(what, key, at, vals))
    return out


def _sentence(what: str, key: str, at: str, vals: list[tuple[Any, bool, Any]]) -> str:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v, _, _ in vals)
    if numeric:
        vals = sorted(vals, key=lambda x: x[0])
    fills = [v for v, full, _ in vals if full]
    below = [(v, h) for v, full, h in vals if not full]

    def head(h: Any) -> str:
        return f", headroom {h:.0f} %" if h is not None and not pd.isna(h) else ""

    if numeric and max(v for v, _ in below) < min(fills):  # grows into the limit (a bigger fleet)
        v, h = max(below, key=lambda x: x[0])
        return f"{what} fills from {key} = {fmt_param(min(fills))}{at}; {fmt_param(v)} stays below{head(h)}"
    if numeric and min(v for v, _ in below) > max(fills):  # grows out of it (a bigger table, a longer backoff)
        v, h = min(below, key=lambda x: x[0])
        more = " and below" if len(fills) > 1 else ""
        return f"{what} fills at {key} = {fmt_param(max(fills))}{more}{at}; {fmt_param(v)} stays below{head(h)}"
    return (f"{what} fills at {key} = {', '.join(fmt_param(v) for v in fills)}{at}; stays below at "
            f"{', '.join(fmt_param(v) + head(h) for v, h in below)}")


def limits_section(pp: pd.DataFrame, limits: pd.DataFrame | None, keys: list[str], plot_dir: Path,
                   figures: list[tuple[str, str]]) -> str:
    """The section's text ("" when no device has a limit); its plots are saved in ``plot_dir`` and
    listed in ``figures``."""
    from sim.report.markdown import markdown_table

    devices = limited(pp)
    if not devices:
        return ""
    parts = ["Every middlebox with a limit: a flow table (`flows_limit`, `lb.max_flows`) or a port budget "
             "(`ports_limit`). Per grid point, over its replications: the peak held (`flows_peak`/`ports_peak`, "
             "the largest), `headroom_pct` = (limit − peak) / limit × 100 at that peak, `connects_rejected` "
             "(SYNs refused: table full or no port; summed), `seconds_full` (averaged) and `exhausted_at_s` "
             "(the earliest; – = never full).\n"]
    for index, name, leg, kind in devices:
        figs = _figures(pp, index, kind)
        what = f"the {LIMIT_WORDS[kind]} of {name}"
        parts.append(f"### {name} ({leg} leg): {LIMIT_WORDS[kind]}\n")
        table = pd.DataFrame([{**{k: r["_row"][k] for k in keys}, **{c: r[c] for c in figs.columns
                                                                     if c not in ("_row", "point_id")}}
                              for _, r in figs.iterrows()])
        parts.append(markdown_table(table, [*keys, f"{kind}_peak", f"{kind}_limit", *FIGURES], keys))
        for line in exhaustion_points(figs, keys, what):
            parts.append(f"- Exhaustion point: {line[0].upper()}{line[1:]}.")
        w = worst(figs)
        setting = ", ".join(f"{k} = {fmt_param(w['_row'][k])}" for k in keys) or "the config as is"
        sub = None if limits is None else limits[(limits["point_id"] == w["point_id"]) & (limits["device"] == index)
                                                 & (limits["kind"] == kind)]
        if sub is None or sub.empty:
            parts.append(f"\n(No occupancy series stored for {name}: rerun the sweep to plot it.)\n")
            continue
        rep = int(sub["replication"].min())
        one = sub[sub["replication"] == rep].sort_values("t_s")
        full = w["exhausted_at_s"]
        parts.append(
            f"\nPlotted: the worst grid point ({setting}; most connects rejected, then most seconds full, then "
            f"least headroom), replication {rep}. Over its replications the {LIMIT_WORDS[kind]} peaked at "
            f"{fmt(w[f'{kind}_peak'])} of {fmt(w[f'{kind}_limit'])} {kind} (headroom_pct {fmt(w['headroom_pct'])}), "
            f"{fmt(w['connects_rejected'])} connects rejected, {fmt(w['seconds_full'])} s full"
            + (f", first full at {fmt(full)} s." if _exhausted(full) else ", never full.") + "\n")
        fname = f"limits-{index}-{kind}.png"
        # exhausted_at_s is the earliest over the point's replications: marked when that is this run's
        mark = full if _exhausted(full) and sub["replication"].nunique() == 1 else None
        plots.save(plots.occupancy(one, f"{name} ({leg} leg) at {setting}, replication {rep}", kind, mark),
                   plot_dir / fname)
        figures.append((fname, f"{name} ({leg} leg): {kind} held against its limit at {setting}, replication {rep}"))
    return "\n".join(parts) + "\n"

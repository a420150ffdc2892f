"""Verdicts: which knob settings are safe under every condition, their margin and cost."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from sim.config.profiles import middlebox_spec
from sim.config.schema import KeepaliveCfg, KernelCfg, Scenario, lb_list
from sim.model.clock import wheel_granularity_j
from sim.report.capacity import CAPACITY_FIELDS
from sim.report.summary import REASON_FIELDS


def keepalive_sides(sc: Scenario) -> list[tuple[str, KeepaliveCfg, KernelCfg]]:
    """The sockets on either side of the client-facing middlebox(es), with their kernels."""
    sides = [("client", sc.client.keepalive, sc.kernel.merged(sc.client.kernel))]
    if sc.envoy:
        sides.append(("envoy listener", sc.envoy.listener.keepalive, sc.kernel.merged(sc.envoy.kernel)))
    else:
        sides.append(("upstream", sc.upstream.keepalive, sc.kernel.merged(sc.upstream.kernel)))
    return sides


def probe_lateness_max_s(idle_s: int, kernel: KernelCfg) -> float:
    """Worst lateness of the timer firing that sends the first probe (rule 40).

    The probe goes out from a firing armed with the lazy remainder I - elapsed (R16), which is at
    most I (an arm at establishment, or I - V + RTT after an answered probe); a shorter remainder
    lands on a finer level. So the worst case is the granularity of the level of I itself."""
    hz, exact, _ = kernel.resolved()
    if exact:
        return 0.0
    return wheel_granularity_j(int(idle_s * hz)) / hz


def predicted_margin_s(sc: Scenario) -> float | None:
    """LB idle timeout minus the latest moment a keepalive probe can reach it after the LB's last
    refresh: I + worst wheel lateness + the hops between the LB and the prober, both ways.
    ``None`` when nothing sends keepalives towards the client-facing middlebox."""
    chain = lb_list(sc.lb)
    if not chain:
        return None
    specs = [middlebox_spec(c) for c in chain]
    if any(s.refreshed_by != "any_packet" for s in specs):
        return None  # a byte-counting device (ALB, proxies): TCP keepalive cannot hold it open
    timeout = min(s.idle_timeout_s for s in specs)
    hops = len(chain)  # farthest middlebox from either end
    best = None
    for _, ka, kernel in keepalive_sides(sc):
        if not ka.enabled:
            continue
        _, _, sysctl = kernel.resolved()
        idle = ka.idle or sysctl["net.ipv4.tcp_keepalive_time"]
        gap = idle + probe_lateness_max_s(idle, kernel) + 2 * hops * sc.network.one_way_delay
        margin = timeout - gap
        best = margin if best is None else max(best, margin)
    return best


def per_point(points: pd.DataFrame, param_keys: list[str], connections: int) -> pd.DataFrame:
    """Replications folded into one row per grid point."""
    ok = points[points["error"] == ""] if "error" in points else points
    agg = ok.groupby("point_id", sort=False).agg(
        point_index=("point_index", "first"),
        replications=("replication", "count"),
        silent_drops=("silent_drops", "sum"),
        worst_rep_drops=("silent_drops", "max"),
        failed_requests=("failed_requests", "sum"),
        requests=("requests", "sum"),
        min_slack_s=("min_slack_s", "min"),
        at_risk_gaps=("at_risk_gaps", "sum"),
        keepalive_pps=("keepalive_pps", "mean"),
        lb_active_flows_peak=("lb_active_flows_peak", "max"),
        detect_s_max=("detect_s_max", "max"),
        zombie_s_total=("zombie_s_total", "sum"),
        hang_s_total=("hang_s_total", "sum"),
        zombies_peak=("zombies_peak", "max"),
        keepalive_packets=("keepalive_packets", "sum"),
        lb_rsts=("lb_rsts", "sum"),
        new_flows=("new_flows", "sum"),
        **{f: (f, "max" if "peak" in f else "mean") for f in CAPACITY_FIELDS},
        **{f: (f, "sum") for f in REASON_FIELDS},
    ).reset_index()
    firsts = ok.groupby("point_id", sort=False)[param_keys].first().reset_index()
    out = firsts.merge(agg, on="point_id").sort_values("point_index", ignore_index=True)
    out["safe"] = out["silent_drops"] == 0
    out["p_drop_upper"] = [
        (3.0 / n if n else math.nan) if d == 0 else d / max(n + d, 1)
        for d, n in zip(out["silent_drops"], out["at_risk_gaps"], strict=True)
    ]
    fleet = out["connections"] if "connections" in out else connections  # a swept fleet size wins
    out["ka_pps_per_1000"] = out["keepalive_pps"] / fleet * 1000
    return out


def per_knob(pp: pd.DataFrame, knobs: list[str]) -> pd.DataFrame:
    """One row per knob setting, folded over the conditions; safe first, cheapest first."""
    keys = knobs or ["point_id"]
    g = pp.groupby(keys, sort=False, dropna=False)
    table = g.agg(
        safe=("safe", "all"),
        silent_drops=("silent_drops", "sum"),
        failed_requests=("failed_requests", "sum"),
        min_slack_s=("min_slack_s", "min"),
        predicted_margin_s=("predicted_margin_s", "min"),
        p_drop_upper=("p_drop_upper", "max"),
        ka_pps_per_1000=("ka_pps_per_1000", "max"),
        lb_active_flows_peak=("lb_active_flows_peak", "max"),
        **{f: (f, "sum") for f in REASON_FIELDS},
        points=("point_id", "count"),
    ).reset_index()
    # safe settings cheapest first; unsafe ones after, fewest drops first
    table["_cost"] = [c if s else d for s, c, d in zip(table["safe"], table["ka_pps_per_1000"].fillna(0),
                                                      table["silent_drops"], strict=True)]
    table = table.sort_values(["safe", "_cost"], ascending=[False, True], kind="stable", ignore_index=True)
    return table.drop(columns="_cost")


def recommend(table: pd.DataFrame, knobs: list[str]) -> dict[str, Any] | None:
    """The cheapest knob setting that is safe under every condition, lost no request there (for any
    reason: resets, timeouts, GOAWAY) and whose predicted margin is not negative (the nominal
    margin covers one full timer granularity)."""
    clean = table["failed_requests"] == 0
    for f in REASON_FIELDS:  # a GOAWAY storm is no fix even when nothing is dropped
        if f in table:
            clean &= table[f] == 0
    ok = table[table["safe"] & clean & ((table["predicted_margin_s"] >= 0) | table["predicted_margin_s"].isna())]
    if ok.empty:
        return None
    row = ok.iloc[0]
    return {"params": {k: _py(row[k]) for k in knobs}, **{c: _py(row[c]) for c in table.columns if c not in knobs}}


def thresholds(pp: pd.DataFrame, knob: str, conditions: list[str]) -> list[dict[str, Any]]:
    """Per condition: the first knob value (ascending) predicted unsafe and observed unsafe."""
    out = []
    groups = pp.groupby(conditions, sort=False) if conditions else [((), pp)]
    for cond, sub in groups:
        sub = sub[sub[knob].map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))]
        sub = sub.sort_values(knob)
        pred = sub[sub["predicted_margin_s"] < 0][knob]
        obs = sub[~sub["safe"]][knob]
        cond = cond if isinstance(cond, tuple) else (cond,)
        out.append({"condition": dict(zip(conditions, map(_py, cond), strict=False)),
                    "predicted_first_unsafe": _py(pred.iloc[0]) if len(pred) else None,
                    "observed_first_unsafe": _py(obs.iloc[0]) if len(obs) else None})
    return out


def _py(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def idle_keepalive_pps(sc: Scenario) -> float | None:
    """Closed form for a fleet that is idle after its first request: each connection's prober sends
    a probe and gets its ACK every TCP_KEEPIDLE + RTT (R16, example 11), both crossing the LB."""
    for _, ka, kernel in reversed(keepalive_sides(sc)):
        if ka.enabled:
            _, _, sysctl = kernel.resolved()
            idle = ka.idle or sysctl["net.ipv4.tcp_keepalive_time"]
            intvl = ka.interval or sysctl["net.ipv4.tcp_keepalive_intvl"]
            rtt = 2 * (len(lb_list(sc.lb)) + 1) * sc.network.one_way_delay
            period = intvl if intvl - rtt >= idle else idle + rtt
            return 2 * sc.connections / period
    return None


def other_failures(row) -> str:
    """Failed requests by reason, e.g. ``race_reset 12, goaway 3`` (empty when none)."""
    parts = [f"{f[:-1]} {int(row[f])}" for f in REASON_FIELDS if f in row and row[f]]
    return ", ".join(parts)

"""Verdicts: which knob settings are safe under every condition, their margin and cost."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from sim.config.profiles import middlebox_spec
from sim.config.schema import KeepaliveCfg, KernelCfg, Scenario, lb_list
from sim.facts.names import FAILURE_REASONS
from sim.facts.wheel import wheel_granularity_j
from sim.metrics.capacity import CAPACITY_FIELDS, combine_devices
from sim.metrics.summary import OTHER_FAILURE_FIELDS, REASON_FIELDS, failure_reasons
from sim.report.classes import fold_classes, point_classes

Side = tuple[str, KeepaliveCfg, KernelCfg]


def keepalive_sides(sc: Scenario, client: Any = None) -> list[Side]:
    """The sockets on either side of the client-facing middlebox(es), with their kernels;
    ``client``: a traffic class's client (default: the top-level client section)."""
    client = client if client is not None else sc.client
    sides = [("client", client.keepalive, sc.kernel.merged(client.kernel))]
    if sc.envoy:
        sides.append(("envoy listener", sc.envoy.listener.keepalive, sc.kernel.merged(sc.envoy.kernel)))
    else:
        sides.append(("upstream", sc.upstream.keepalive, sc.kernel.merged(sc.upstream.kernel)))
    return sides


def upstream_sides(sc: Scenario) -> list[Side]:
    """The sockets on either side of ``upstream.lb`` (Envoy's cluster side and the server)."""
    assert sc.envoy is not None  # upstream.lb needs an envoy block
    return [("envoy upstream", sc.envoy.upstream.keepalive, sc.kernel.merged(sc.envoy.kernel)),
            ("upstream", sc.upstream.keepalive, sc.kernel.merged(sc.upstream.kernel))]


def probe_lateness_max_s(idle_s: int, kernel: KernelCfg) -> float:
    """Worst lateness of the timer firing that sends the first probe (rule 40); for ``idle_s`` = V,
    of the firing one TCP_KEEPINTVL after an answered probe.

    The probe goes out from a firing armed with the lazy remainder I - elapsed (R16), which is at
    most I (an arm at establishment, or I - V + RTT after an answered probe); a shorter remainder
    lands on a finer level. So the worst case is the granularity of the level of I itself."""
    hz, exact, _ = kernel.resolved()
    if exact:
        return 0.0
    return wheel_granularity_j(int(idle_s * hz)) / hz


def predicted_margin_s(sc: Scenario) -> float | None:
    """LB idle timeout minus the latest moment a keepalive probe can reach it after the LB's last
    refresh: I + worst wheel lateness + the hops between the LB and the prober, both ways; the
    smaller of the client's leg (``lb``) and Envoy's upstream leg (``upstream.lb``). ``None`` when no
    leg has a middlebox, or a leg with one has nothing sending keepalives through it (its safety
    then depends on the traffic) or counts bytes (ALB, proxies: TCP keepalive cannot hold it). With
    traffic classes the client's leg is each class's, with its own client: the smallest counts."""
    legs = [(lb_list(sc.lb), keepalive_sides(sc, c.client)) for c in sc.classes()]
    if sc.upstream.lb is not None and sc.envoy is not None:
        legs.append((lb_list(sc.upstream.lb), upstream_sides(sc)))
    margins = [_leg_margin_s(sc, chain, sides) for chain, sides in legs if chain]
    if not margins or any(m is None for m in margins):
        return None
    return min(m for m in margins if m is not None)


def hop_margin(sc: Scenario, chain: list, label: str) -> float | None:
    """The predicted margin of one socket's keepalive (``client``, ``envoy listener``, ``envoy
    upstream``, ``upstream server``) against the middlebox ``chain`` on its leg."""
    label = "upstream" if label == "upstream server" else label
    sides = keepalive_sides(sc) + (upstream_sides(sc) if sc.envoy else [])
    return _leg_margin_s(sc, chain, [s for s in sides if s[0] == label])


def _leg_margin_s(sc: Scenario, chain: list, sides: list[Side]) -> float | None:
    specs = [middlebox_spec(c) for c in chain]
    if any(s.refreshed_by != "any_packet" for s in specs):
        return None  # a byte-counting device (ALB, proxies): TCP keepalive cannot hold it open
    timeout = min(s.idle_timeout_s for s in specs)
    hops = len(chain)  # farthest middlebox from either end
    best = None
    for _, ka, kernel in sides:
        if not ka.enabled:
            continue
        _, _, sysctl = kernel.resolved()
        idle = ka.idle or sysctl["net.ipv4.tcp_keepalive_time"]
        intvl = ka.interval or sysctl["net.ipv4.tcp_keepalive_intvl"]
        gap = idle + probe_lateness_max_s(idle, kernel) + 2 * hops * sc.network.one_way_delay
        if intvl - 2 * (hops + 1) * sc.network.one_way_delay >= idle:
            # R16, K example 11: after an answered probe the expiry one TCP_KEEPINTVL later finds the
            # idle time already reached and probes again, so probes come every V, not every I
            gap = max(gap, intvl + probe_lateness_max_s(intvl, kernel))
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
        detect_s_max=("detect_s_max", "max"),
        zombie_s_total=("zombie_s_total", "sum"),
        hang_s_total=("hang_s_total", "sum"),
        hang_s_open_total=("hang_s_open_total", "sum"),
        requests_in_flight_at_end=("requests_in_flight_at_end", "sum"),
        zombies_peak=("zombies_peak", "max"),
        keepalive_packets=("keepalive_packets", "sum"),
        lb_rsts=("lb_rsts", "sum"),
        new_flows=("new_flows", "sum"),
        # segments injected faults took (absent from folders written before faults existed)
        **{f: (f, "sum") for f in ("fault_drops", "fault_rsts", "connect_failures") if f in ok},
        **{f: (f, "max" if "peak" in f else "mean") for f in CAPACITY_FIELDS},
        **{f: (f, "sum") for f in REASON_FIELDS + OTHER_FAILURE_FIELDS},
        # a sampled fleet (fleet.sample): its fleet-day estimate, the mean over replications
        **{f: (f, "mean") for f in ("sample_fraction", "expected_drops_per_day") if f in ok},
    ).reset_index()
    if "expected_drops_per_day_ci95" in ok:  # each replication's interval; their mean bounds (conservative)
        cis = {pid: np.mean([_json(v) for v in g["expected_drops_per_day_ci95"]], axis=0).tolist()
               for pid, g in ok.groupby("point_id", sort=False)}
        agg["expected_drops_per_day_ci95"] = agg["point_id"].map(cis)
    firsts = ok.groupby("point_id", sort=False)[param_keys].first().reset_index()
    out = firsts.merge(agg, on="point_id").sort_values("point_index", ignore_index=True)
    out["failure_reasons"] = [failure_reasons(r) for _, r in out.iterrows()]
    if "devices" in ok:
        devs = {pid: combine_devices([_json(v) for v in g["devices"]])
                for pid, g in ok.groupby("point_id", sort=False)}
        out["devices"] = out["point_id"].map(devs)
        # SYNs a full table or an empty port budget refused, every device (a retry may have got through)
        out["connects_rejected"] = out["devices"].map(
            lambda ds: sum(int(d.get("connects_rejected") or 0) for d in ds or []))
    if "by_class" in ok:  # each traffic class's figures, and its own verdict (docs/outputs.md#traffic-classes)
        classes = {pid: point_classes([_json(v) for v in g["by_class"]])
                   for pid, g in ok.groupby("point_id", sort=False)}
        out["by_class"] = out["point_id"].map(classes)
    _verdict(out)
    # a sampled fleet's counts are fleet estimates: the rule of three counts the gaps actually seen
    seen = out["sample_fraction"] if "sample_fraction" in out else pd.Series(1.0, index=out.index)
    out["p_drop_upper"] = [
        (3.0 / (n * f) if n else math.nan) if d == 0 else d / max(n + d, 1)
        for d, n, f in zip(out["silent_drops"], out["at_risk_gaps"], seen, strict=True)
    ]
    fleet = out["connections"] if "connections" in out else connections  # a swept fleet size wins
    # the cost column is the capacity LB's (the client-facing one); all middleboxes break ties
    out["ka_pps_per_1000"] = out["lb_keepalive_pps"] / fleet * 1000
    out["ka_pps_all_per_1000"] = out["keepalive_pps"] / fleet * 1000
    return out


#: what makes a grid point or a knob setting unsafe, in the words of the ``why`` column
WHY_DROPS, WHY_CONNECTS = "silent drops", "rejected connects"


def _verdict(df: pd.DataFrame) -> None:
    """``safe`` and ``why`` in place: a point is safe when no flow was silently dropped and no connect
    was rejected or failed (connects_rejected: refused by a full flow table or for want of a port;
    connect_failures: connect_timeout, connect_refused). ``why`` names which: ``silent drops``,
    ``rejected connects``, both, or "" when safe."""
    drops = df["silent_drops"] > 0
    connects = pd.Series(False, index=df.index)
    for f in ("connect_failures", "connects_rejected"):  # absent from folders written before limits
        if f in df:
            connects |= df[f].fillna(0) > 0
    df["safe"] = ~(drops | connects)
    df["why"] = [unsafe_why(d, c) for d, c in zip(drops, connects, strict=True)]


def unsafe_why(drops: bool, connects: bool) -> str:
    """The ``why`` of a verdict: ``silent drops``, ``rejected connects``, both, or "" (safe)."""
    return " and ".join(w for w, on in ((WHY_DROPS, drops), (WHY_CONNECTS, connects)) if on)


def summary_why(s: dict) -> str:
    """``unsafe_why`` of one run's summary (DESIGN §3): "" when it is safe."""
    rejected = sum(int(d.get("connects_rejected") or 0) for d in s.get("devices", []))
    return unsafe_why(s["silent_drops"] > 0, s.get("connect_failures", 0) > 0 or rejected > 0)


def _json(v: Any) -> Any:
    """A nested summary field as stored in a results folder (JSON text, or Arrow's arrays) or in memory."""
    if isinstance(v, str):
        return json.loads(v)
    return v.tolist() if hasattr(v, "tolist") else v


def per_knob(pp: pd.DataFrame, knobs: list[str]) -> pd.DataFrame:
    """One row per knob setting, folded over the conditions; safe first, cheapest first."""
    keys = knobs or ["point_id"]
    g = pp.groupby(keys, sort=False, dropna=False)
    table = g.agg(
        silent_drops=("silent_drops", "sum"),
        failed_requests=("failed_requests", "sum"),
        min_slack_s=("min_slack_s", "min"),
        predicted_margin_s=("predicted_margin_s", "min"),
        p_drop_upper=("p_drop_upper", "max"),
        ka_pps_per_1000=("ka_pps_per_1000", "max"),
        ka_pps_all_per_1000=("ka_pps_all_per_1000", "max"),
        lb_active_flows_peak=("lb_active_flows_peak", "max"),
        **{f: (f, "sum") for f in ("connect_failures", "connects_rejected") if f in pp},
        hang_s_total=("hang_s_total", "sum"),
        hang_s_open_total=("hang_s_open_total", "sum"),
        requests_in_flight_at_end=("requests_in_flight_at_end", "sum"),
        **{f: (f, "sum") for f in REASON_FIELDS + OTHER_FAILURE_FIELDS},
        **{f: (f, "max") for f in ("expected_drops_per_day",) if f in pp},
        points=("point_id", "count"),
    ).reset_index()
    if "expected_drops_per_day_ci95" in pp:  # the worst condition's interval, bound by bound (same group order)
        table["expected_drops_per_day_ci95"] = list(g["expected_drops_per_day_ci95"].agg(
            lambda v: np.max(np.array(list(v)), axis=0).tolist()).values)
    table["failure_reasons"] = [failure_reasons(r) for _, r in table.iterrows()]
    if "by_class" in pp:  # each class over the setting's conditions (same group order)
        table["by_class"] = [fold_classes(list(group["by_class"])) for _, group in g]
    _verdict(table)
    # safe settings cheapest first (at the capacity LB, then at every middlebox); unsafe ones after,
    # fewest drops first
    safe = table["safe"]
    table["_cost"] = table["ka_pps_per_1000"].fillna(0).where(safe, table["silent_drops"])
    table["_cost2"] = table["ka_pps_all_per_1000"].fillna(0).where(safe, 0)
    table = table.sort_values(["safe", "_cost", "_cost2"], ascending=[False, True, True], kind="stable",
                              ignore_index=True)
    return table.drop(columns=["_cost", "_cost2"])


def recommend(table: pd.DataFrame, knobs: list[str]) -> dict[str, Any] | None:
    """The cheapest knob setting that is safe under every condition, lost no request there (for any
    reason: resets, timeouts, GOAWAY) and whose predicted margin is not negative (the nominal
    margin covers one full timer granularity)."""
    clean = table["failed_requests"] == 0
    for f in REASON_FIELDS + OTHER_FAILURE_FIELDS:  # a GOAWAY storm is no fix even when nothing is dropped
        if f in table:
            clean &= table[f] == 0
    ok = table[table["safe"] & clean & ((table["predicted_margin_s"] >= 0) | table["predicted_margin_s"].isna())]
    if ok.empty:
        return None
    row = ok.iloc[0]
    return {"params": {k: _py(row[k]) for k in knobs}, **{c: _py(row[c]) for c in table.columns if c not in knobs}}


def thresholds(pp: pd.DataFrame, knob: str, conditions: list[str]) -> list[dict[str, Any]]:
    """Per condition: the first knob value (ascending) predicted unsafe and observed to drop silently."""
    out = []
    groups = pp.groupby(conditions, sort=False) if conditions else [((), pp)]
    for cond, sub in groups:
        sub = sub[sub[knob].map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))]
        sub = sub.sort_values(knob)
        pred = sub[sub["predicted_margin_s"] < 0][knob]
        obs = sub[sub["silent_drops"] > 0][knob]  # the timer rule predicts drops, not rejected connects
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


#: HTTP status the client saw, for the reasons Envoy answers itself
_STATUS = {"route_timeout": "504", "stream_idle_timeout": "408"}


def failure_split(row) -> str:
    """Every failure reason with its count, e.g. ``reset 120, hung 5, route_timeout 3 (504); 503 from
    Envoy 118; GOAWAY frames 7`` (empty when nothing failed). The reasons sum to failed_requests."""
    parts = []
    for reason, f in zip(FAILURE_REASONS, REASON_FIELDS, strict=True):
        n = int(row[f]) if f in row and not pd.isna(row[f]) else 0
        if n:
            parts.append(f"{reason} {n}" + (f" ({_STATUS[reason]})" if reason in _STATUS else ""))
    text = ", ".join(parts)
    extra = [f"{label} {int(row[f])}" for f, label in (("envoy_503s", "503 from Envoy"), ("goaways", "GOAWAY frames"))
             if f in row and not pd.isna(row[f]) and row[f]]
    return "; ".join([text, *extra]) if text else "; ".join(extra)

"""report.md and plots/ from a results folder (``python -m sim report DIR``)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from sim.config.load import with_values
from sim.config.profiles import all_profiles
from sim.config.schema import Scenario, lb_list
from sim.metrics.packets import lane_events, lines, stored_entries
from sim.output import atomic_write
from sim.report import plots
from sim.report.classes import class_table, several_classes
from sim.report.fmt import describe_dist, fmt, fmt_param, point_label, short_keys
from sim.report.limits import limits_section, row_devices
from sim.report.verdict import failure_split, per_knob
from sim.results.load import config_value, load_results


def capacity_device(sc: Scenario) -> str:
    """The capacity LB, named: the client-facing middlebox, else the first on Envoy's upstream leg."""
    chain = lb_list(sc.lb) or lb_list(sc.upstream.lb)
    if not chain:
        return "the LB (none in this config)"
    leg = "client-facing" if lb_list(sc.lb) else "upstream-leg"
    return f"{chain[0].profile} (the {leg} LB)"


def lane_names(sc: Scenario, leg: str) -> dict[str, str]:
    """Who sits at either end of a connection of ``leg``, and which middleboxes are in between."""
    ds = [c.profile for c in lb_list(sc.lb)]
    us = [c.profile for c in lb_list(sc.upstream.lb)]
    if leg == "upstream":
        return {"client": "Envoy (upstream side)", "lb": " / ".join(us) or "no LB", "server": "upstream server"}
    server = "Envoy" if sc.envoy else "upstream server"
    if leg == "lb_backend":
        return {"client": ds[0] if ds else "LB", "lb": " / ".join(ds) or "no LB", "server": server}
    return {"client": "client", "lb": " / ".join(ds) or "no LB", "server": server}

VERDICT_COLUMNS = ["safe", "why", "silent_drops", "failed_requests", "failed_why", "hang_s_total", "hang_s_open_total",
                   "requests_in_flight_at_end", "min_slack_s", "predicted_margin_s", "p_drop_upper", "ka_pps_per_1000",
                   "lb_active_flows_peak"]


def sampled_columns(df: pd.DataFrame) -> list[str]:
    """A sampled fleet's (fleet.sample) verdict columns: expected silent drops per fleet-day and their
    95 % interval (docs/outputs.md#sampled-fleets); none for a fleet simulated whole."""
    return [c for c in ("sample_fraction", "expected_drops_per_day", "expected_drops_per_day_ci95") if c in df]


def markdown_table(df: pd.DataFrame, columns: list[str], param_cols: list[str]) -> str:
    if "why" in columns and "why" not in df:  # a folder written before limits: drops alone decided
        df = df.assign(why=["silent drops" if n else "" for n in df["silent_drops"]])
    if "failed_why" in columns and "failed_why" not in df:
        df = df.assign(failed_why=[failure_split(r) or "–" for _, r in df.iterrows()])
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    rows = []
    for _, r in df.iterrows():
        rows.append("| " + " | ".join(fmt_param(r[c]) if c in param_cols else fmt(r[c]) for c in columns) + " |")
    return head + "\n".join(rows) + "\n"


def describe(sc: Scenario) -> str:
    lbs = lb_list(sc.lb)
    ulbs = lb_list(sc.upstream.lb)
    chain = ["client"] + [f"{c.profile}" for c in lbs]
    if sc.envoy:
        chain.append("Envoy")
    chain += [c.profile for c in ulbs] + ["upstream"]
    classes = sc.classes()
    requests = (_requests(classes[0].traffic) if len(classes) == 1 else
                "in classes: " + "; ".join(f"`{c.name}`, {c.share:.0%} of them, {_requests(c.traffic)}"
                                           for c in classes))
    return (f"Topology: {' → '.join(chain)}. {sc.connections} long-lived client connections {requests}. "
            f"{sc.duration:g} s simulated per replication, {sc.replications} replication(s), seed {sc.seed}, "
            f"{sc.network.one_way_delay * 1000:g} ms per hop.")


def _requests(t) -> str:
    """One traffic mapping's (or class's) requests, as part of a sentence."""
    return (f"opened over {t.ramp:g} s; the gap between a response and the next request is "
            f"{describe_dist(t.request_gap.spec())}; server time {describe_dist(t.service_time.spec())}")


def assumptions(sc: Scenario) -> str:
    lines = []
    hz, exact, sysctl = sc.kernel.resolved()
    lines.append(f"- Kernel timers: `{'exact' if exact else 'wheel'}` at HZ={hz} (kernel-keepalive.md §11, rule 40);"
                 " swept values override this per point.")
    short = ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sysctl.items())
    lines.append(f"- Sysctls (per netns): {short}.")
    profiles = all_profiles()
    for cfg in lb_list(sc.lb) + lb_list(sc.upstream.lb):
        p = profiles[cfg.profile]
        src = "; ".join(f"<{s.url}>" for s in p.sources[:2])
        lines.append(f"- `{p.name}`: idle {cfg.idle_timeout or p.idle_timeout_s:g} s, on expiry "
                     f"`{cfg.on_expiry or p.on_expiry}`, late packets `{cfg.late_packet or p.late_packet}` "
                     f"(confidence: {p.confidence}). Sources: {src}")
    lines.append("- Every data segment is ACKed on arrival; ACKs and keepalive probes refresh pass-through "
                 "middleboxes; RSTs built by the model are always exact (docs/model.md lists every assumption).")
    return "\n".join(lines)


def build_report(root: Path, timeline: bool = True) -> Path:
    """Write ``report.md`` and ``plots/*.png`` in ``root`` from what the sweep stored there."""
    res = load_results(root)
    root, meta, knobs, conds = res.root, res.meta, res.knobs, res.conditions
    pp, loaded, conns = res.points, res.loaded, res.connections
    table = per_knob(pp, knobs)
    sc = loaded.scenario
    plot_dir = root / "plots"
    plot_dir.mkdir(exist_ok=True)
    figures = []
    if knobs or conds:
        keys = knobs + conds
        plots.save(plots.heatmap(pp, keys[0], keys[1:]), plot_dir / "heatmap.png")
        figures.append(("heatmap.png", f"Silent drops per replication over {keys[0]}"
                        + (f", one row per combination of {', '.join(keys[1:])}" if keys[1:] else "")))
    if conns is not None:
        plots.save(plots.detection_times(conns), plot_dir / "detection.png")
        figures.append(("detection.png", "How long after the drop each side found out"))
    if knobs:
        plots.save(plots.cost_vs_safety(table, knobs, capacity_device(sc)), plot_dir / "cost_vs_safety.png")
        figures.append(("cost_vs_safety.png", "Keepalive cost against silent drops"))
    cap_text = _capacity(root, loaded, pp, knobs, conds, plot_dir, figures)
    limits_text = limits_section(pp, res.limits, knobs + conds, plot_dir, figures)
    tl_text = ""
    if timeline and res.trace is not None:
        tl_text = _timeline(loaded, pp, res.trace, knobs + conds, plot_dir, figures)
    rec = meta.get("recommended")
    parts = [f"# {sc.name}: which settings prevent silent drops\n",
             describe(sc) + "\n",
             "## Verdict\n"]
    if rec:
        params = ", ".join(f"`{k}` = {fmt_param(v)}" for k, v in rec["params"].items())
        where = ", ".join(conds) or "the config as is"
        parts.append(f"**Recommended: {params}.** Safe under every condition ({where}), "
                     f"observed smallest slack {fmt(rec.get('min_slack_s'))} s before the LB would expire a flow, "
                     f"predicted worst-case margin {fmt(rec.get('predicted_margin_s'))} s "
                     f"(timer-wheel lateness included), upper bound on the drop probability per idle gap "
                     f"{fmt(rec.get('p_drop_upper'))} (rule of three), cost {fmt(rec.get('ka_pps_per_1000'))} "
                     f"keepalive packets/s through the LB per 1,000 connections.\n")
    elif knobs:
        parts.append("**No swept setting is safe under every condition.**\n")
    if meta.get("thresholds"):
        parts.append("First value of the knob with silent drops, predicted by the timer-wheel rule (worst-case "
                     "lateness of the probe's firing, lazy re-arm remainders included) and observed:\n")
        for t in meta["thresholds"]:
            cond = ", ".join(f"{k}={fmt_param(v)}" for k, v in t["condition"].items()) or "as configured"
            parts.append(f"- {cond}: predicted {fmt(t['predicted_first_unsafe'])}, observed "
                         f"{fmt(t['observed_first_unsafe'])}")
        parts.append("")
    if meta.get("failed_points"):
        parts.append(f"**{len(meta['failed_points'])} point(s) failed** and are missing: "
                     f"{', '.join(meta['failed_points'])}.\n")
    parts.append("## Verdict table (knob settings, safe first, cheapest first)\n")
    parts.append("Columns: `safe` = no silent drop and no rejected or failed connect (a full flow table, no free "
                 "port, connect_timeout, connect_refused) in any replication under any condition; `why` = what made "
                 "it unsafe: silent drops, rejected connects, or both; `min_slack_s` = "
                 "observed smallest gap between the LB's last refresh and its expiry; `predicted_margin_s` = "
                 "LB timeout minus the latest a probe can arrive; `p_drop_upper` = 3/N over N at-risk idle gaps; "
                 "`ka_pps_per_1000` = keepalive packets/s per 1,000 connections.\n")
    parts.append(markdown_table(table, (knobs or ["point_id"]) + VERDICT_COLUMNS + sampled_columns(table), knobs))
    parts += _by_class(table, pp, knobs, conds)
    if cap_text:
        parts.append("## Capacity\n")
        parts.append(cap_text)
    if limits_text:
        parts.append("## Limits\n")
        parts.append(limits_text)
    parts.append("## Every grid point\n")
    parts.append(markdown_table(pp, knobs + conds + ["replications"] + VERDICT_COLUMNS + sampled_columns(pp),
                                knobs + conds))
    parts.append("## Assumptions\n")
    parts.append(assumptions(sc) + "\n")
    if tl_text:
        parts.append("## Why: one dropped connection\n")
        parts.append(tl_text + "\n")
    parts.append("## Figures\n")
    for name, caption in figures:
        parts.append(f"![{caption}](plots/{name})\n\n*{caption}.*\n")
    path = root / "report.md"
    atomic_write(path, "\n".join(parts))
    return path


def _by_class(table: pd.DataFrame, pp: pd.DataFrame, knobs: list[str], conds: list[str]) -> list[str]:
    """The By traffic class section: each class's verdict per knob setting and per grid point (none
    for a fleet of one class)."""
    if not several_classes(table):
        return []
    keys = knobs or ["point_id"]
    per_setting, per_point = class_table(table, keys), class_table(pp, knobs + conds)
    return ["## By traffic class\n",
            "Each class's own connections (docs/config.md#traffic-classes): `safe` = none of its flows silently "
            "dropped and none of its connects failed, under every condition; counts summed over replications "
            "(and conditions). `keepalive_pps`, `new_flows` and `nlcu_mean` are the load the class's own flows "
            "put on the devices (keepalive packets per second at every device, new flows at every device, the "
            "capacity LB's mean NLCU for its traffic alone: the classes' NLCU does not add up to the fleet's); "
            "per knob setting, `keepalive_pps` and `nlcu_mean` are the busiest condition's. A sampled fleet's "
            "figures are each class's, scaled by its own stratum.\n",
            markdown_table(per_setting, [c for c in per_setting.columns], keys),
            "Every grid point:\n",
            markdown_table(per_point, [c for c in per_point.columns], knobs + conds)]


def _timeline(loaded, pp, traces: pd.DataFrame, keys, plot_dir, figures) -> str:
    """Plot, from trace.parquet (recorded by the sweep), the packets of the connection of the first
    point with a silent drop that was dropped first (a point unsafe for rejected connects alone has
    no dropped connection to show)."""
    unsafe = pp[pp["silent_drops"] > 0]
    if unsafe.empty:
        return ""
    point = unsafe.iloc[0]
    sub = traces[traces["point_id"] == point["point_id"]]
    if sub.empty:
        return ""
    conns = sub.drop_duplicates(["replication", "conn_id"]).sort_values(["replication", "conn_id"], kind="stable")
    row = conns.sort_values("drop_at_s", kind="stable").iloc[0]
    sc = with_values(loaded, {k: config_value(point[k]) for k in keys})
    events = sub[(sub["replication"] == row["replication"]) & (sub["conn_id"] == row["conn_id"])]
    # the same view of the same trace as `python -m sim trace` (sim.metrics.packets), every point
    rec_trace = lane_events(lines(stored_entries(events)))
    drop = float(row["drop_at_s"])
    lo, hi = drop - sc.duration, drop + sc.duration
    end = [t for t, *_ in rec_trace if t is not None and t >= drop]
    hi = min(hi, (max(end) if end else drop) + 30)
    trace = [e for e in rec_trace if e[0] is not None and lo <= e[0] <= hi]
    before = [e for e in trace if e[0] < drop]
    lo = max(lo, (before[-1][0] - 30) if before else lo)
    trace = [e for e in trace if e[0] >= lo]
    setting = ", ".join(f"{k}={fmt_param(point[k])}" for k in keys)
    names = lane_names(sc, row["leg"])
    plots.save(plots.timeline(trace, f"conn {int(row['conn_id'])} ({row['leg']} leg) at "
                              f"{point_label(point, keys)}", drop, names), plot_dir / "timeline.png")
    figures.append(("timeline.png", f"Packets of one dropped connection around its drop ({names['client']} / "
                                    f"{names['lb']} / {names['server']})"))
    cdet, sdet = row["client_detect_s"], row["server_detect_s"]
    return (f"At {setting}, connection {int(row['conn_id'])} ({row['leg']} leg, replication "
            f"{int(row['replication'])}) went quiet; {names['lb']} forgot it at t = {drop:.3f} s. The "
            f"{names['client']} side ended "
            f"`{row['client_outcome']}`" + (f" {cdet:.1f} s after the drop" if not math.isnan(cdet) else "")
            + f", the {names['server']} side `{row['server_outcome']}`"
            + (f" {sdet:.1f} s after it" if not math.isnan(sdet) else "")
            + ". The timeline figure shows every packet of that connection around the drop.")


CAPACITY_COLUMNS = ["failed_requests_peak_per_s", "lb_keepalive_pps", "keepalive_pps_steady",
                    "keepalive_pps_idle_closed_form",
                    "keepalive_bytes_per_s", "lb_bytes_per_s", "lb_active_flows_mean", "lb_active_flows_peak",
                    "new_flows_per_s", "new_flows_peak_per_s", "nlcu_mean", "nlcu_peak", "lb_cost_per_hour_usd"]


def _capacity(root, loaded, pp, knobs, conds, plot_dir, figures) -> str:
    """The capacity section: table per grid point, closed-form keepalive rate, flows and NLCU plots."""
    from sim.report.verdict import idle_keepalive_pps

    if "keepalive_pps_steady" not in pp or pp["keepalive_pps_steady"].isna().all():
        return ""
    keys = knobs + conds
    closed = [idle_keepalive_pps(with_values(loaded, {k: config_value(r[k]) for k in keys}))
              for _, r in pp.iterrows()]
    pp = pp.assign(keepalive_pps_idle_closed_form=closed)
    device = capacity_device(loaded.scenario)
    text = (f"At {device}, per grid point (mean over replications; peaks are maxima). "
            "`keepalive_pps_steady` is measured over the second half of each run. "
            "`keepalive_pps_idle_closed_form` is what a fleet that never sends after its first request "
            "would cost: two packets (probe and ACK) per connection every TCP_KEEPIDLE + RTT. It matches the "
            "measured rate only when connections are idle. NLCU and cost are **estimates** from AWS's "
            "published NLB capacity-unit dimensions (800 new flows/s, 100,000 active flows, 1 GB/h per NLCU; "
            "$0.006 per NLCU-hour + $0.0225/h in us-east-1, <https://aws.amazon.com/elasticloadbalancing/pricing/>, "
            "seen via public copies), not a quote.\n\n")
    text += markdown_table(pp, keys + CAPACITY_COLUMNS, keys)
    text += _devices_table(pp, keys)
    text += _nlcu_table(pp, keys)
    series_path = root / "series.parquet"
    if series_path.exists():
        series = pd.read_parquet(series_path)
        sub = pp
        if conds:
            first = pp[conds[0]].iloc[0]
            sub = pp[pp[conds[0]] == first]
        picks = sub.iloc[:: max(1, len(sub) // 8)]
        shorts = short_keys(keys)
        labels = {r["point_id"]: point_label(r, keys, shorts) for _, r in picks.iterrows()}
        plots.save(plots.active_flows(series, labels, f"Active flows at {device}"), plot_dir / "active_flows.png")
        figures.append(("active_flows.png", f"Flows in the table of {device}, per minute"))
    if not pp["nlcu_mean"].isna().all() and keys:
        plots.save(plots.nlcu(pp, keys), plot_dir / "nlcu.png")
        figures.append(("nlcu.png", "Estimated NLB capacity units per grid point"))
    return text + "\n"


def _nlcu_table(pp: pd.DataFrame, keys: list[str]) -> str:
    """The NLCU estimate per dimension of every device with NLCU figures, per grid point, and the
    dimension that sets the bill (sim.metrics.capacity.NLCU_DIMENSIONS)."""
    cols = ["nlcu_new_flows", "nlcu_active_flows", "nlcu_bytes", "nlcu_mean", "nlcu_dimension"]
    rows = [{**{k: r[k] for k in keys}, "device": d["name"], "leg": d["leg"], **{f: d.get(f) for f in cols}}
            for _, r in pp.iterrows() if "devices" in pp
            for d in row_devices(r["devices"]) if d.get("nlcu_dimension")]
    if not rows:
        return ""
    return ("\nThe NLCU estimate by dimension (means over the minutes; `nlcu_mean` is the mean of each minute's "
            "largest), and `nlcu_dimension`, the one that sets the bill (the largest mean):\n\n"
            + markdown_table(pd.DataFrame(rows), [*keys, "device", "leg", *cols], keys))


def _devices_table(pp: pd.DataFrame, keys: list[str]) -> str:
    """Every middlebox's own figures per grid point (the ``devices`` field)."""
    if "devices" not in pp:
        return ""
    rows = []
    for _, r in pp.iterrows():
        for d in row_devices(r["devices"]):
            rows.append({**{k: r[k] for k in keys}, "device": d["name"], "leg": d["leg"],
                         **{f: d[f] for f in ("flows_peak", "flows_mean", "new_flows_peak_per_s", "keepalive_pps",
                                              "nlcu_mean")}})
    if not rows or len({(d["device"], d["leg"]) for d in rows}) < 2:
        return ""  # one middlebox: the table above is its own
    df = pd.DataFrame(rows)
    cols = [*keys, "device", "leg", "flows_peak", "flows_mean", "new_flows_peak_per_s", "keepalive_pps", "nlcu_mean"]
    return ("\nEvery middlebox on its own (`devices`), per grid point; `keepalive_pps` is per simulated second, "
            "over the whole run:\n\n" + markdown_table(df, cols, keys))

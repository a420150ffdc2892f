"""What ``run`` prints: one scenario's summary in words (sim.cli)."""

from __future__ import annotations


def what_filled(d: dict) -> str:
    """Which of a device's limits filled up: its flow table, its port budget, or both."""
    parts = []
    if d.get("flows_limit") is not None and d["flows_peak"] >= d["flows_limit"]:
        parts.append(f"flow table ({d['flows_limit']} flows)")
    if d.get("ports_limit") is not None and d["ports_peak"] >= d["ports_limit"]:
        parts.append(f"port budget ({d['ports_limit']} ports)")
    return " and ".join(parts) or "limit"


def run_text(sc, result) -> str:
    """What ``run`` prints for ``result`` (a ScenarioResult, with records or with per-leg outcome
    counts: ``outcomes_by_leg``) of scenario ``sc``."""
    from sim.config.schema import lb_list
    from sim.report.classes import class_summary_lines
    from sim.report.fmt import NLCU_WORDS, OUTCOME_WORDS, fmt
    from sim.report.verdict import failure_split, summary_why

    s = result.summary
    by_leg = result.outcomes_by_leg()
    lbs = ", ".join(f"{c.profile}" + (f" {c.idle_timeout:g}s" if c.idle_timeout else "") for c in lb_list(sc.lb))
    ulbs = ", ".join(f"{c.profile}" + (f" {c.idle_timeout:g}s" if c.idle_timeout else "")
                     for c in lb_list(sc.upstream.lb))
    lines = [
        f"{sc.name}: {sc.connections} connection slots x {sc.replications} replication(s), "
        f"{sc.duration:g} s simulated each; LB: {lbs or 'none'}" + (f"; upstream leg: {ulbs}" if ulbs else ""),
        f"  connections opened (downstream): {s['connections']}   silent drops: {s['silent_drops']} "
        f"({100 * s['silent_drop_rate']:.2f}% of all legs' connections)",
        f"  requests: {s['requests']}   failed: {s['failed_requests']} ({100 * s['failed_request_rate']:.2f}%)"
        f"   in flight at end: {s['requests_in_flight_at_end']}",
    ]
    if "sample_fraction" in s:
        lines.insert(1, sample_line(s))
    if s["failed_requests"] or s["goaways"]:
        lines.append(f"  why they failed: {failure_split(s)}")
        lines.append(f"  time failed requests waited: {s['hang_s_total']:.1f} s; still waiting at the end "
                     f"(hung): {s['hang_s_open_total']:.1f} s")
    legs = {"downstream": "downstream leg", "lb_backend": "LB -> backend leg",
            "upstream": "upstream leg (Envoy -> server)"}
    for leg, leg_name in legs.items():
        sides = ("client", "server") if leg == "downstream" else (("Envoy", "server") if leg == "upstream"
                                                                  else ("LB", "backend"))
        for side, col in zip(sides, ("client_outcome", "server_outcome"), strict=True):
            counts = by_leg.get((leg, col), {})
            parts = [f"{n} {OUTCOME_WORDS.get(o, o)}" for o, n in counts.items() if o != "ok"]
            if parts:
                lines.append(f"  {side} side ({leg_name}): " + "; ".join(parts))
    if s["silent_drops"]:
        p50, mx = s["detect_s_p50"], s["detect_s_max"]
        lines.append(f"  detection after the drop: median {fmt(p50)} s, max {fmt(mx)} s; "
                     f"zombie time {s['zombie_s_total']:.0f} s, peak {s['zombies_peak']} zombies at once")
    for d in s.get("devices", []):
        lines.append(f"  {d['name']} ({d['leg']} leg): peak {d['flows_peak']} flows, mean {fmt(d['flows_mean'])}; "
                     f"{fmt(d['keepalive_pps'])} keepalive pkt/s; peak {fmt(d['new_flows_peak_per_s'])} new flows/s")
        if d.get("ports_limit") is not None:
            lines.append(f"    source ports: peak {d['ports_peak']} of {d['ports_limit']} (the fullest budget), "
                         f"mean {fmt(d['ports_mean'])} per budget")
        if d.get("exhausted_at_s") is not None:
            lines.append(f"    {what_filled(d)} full from {fmt(d['exhausted_at_s'])} s, "
                         f"{fmt(d['seconds_full'])} s in all; {d['connects_rejected']} SYNs refused; "
                         f"{s['connect_failures']} connects failed")
        if d.get("headroom_pct") is not None:
            lines.append(f"    headroom {d['headroom_pct']:.0f} % of its limit at the peak")
        if d.get("nlcu_dimension"):
            lines.append(f"    NLCU (estimate): new flows {fmt(d['nlcu_new_flows'])}, active flows "
                         f"{fmt(d['nlcu_active_flows'])}, bytes {fmt(d['nlcu_bytes'])} (means); "
                         f"{NLCU_WORDS[d['nlcu_dimension']]} sets the bill")
    lines.append(f"  keepalive packets through middleboxes: {s['keepalive_packets']} "
                 f"({s['keepalive_pps']:.3f}/s); LB RSTs: {s['lb_rsts']}; smallest slack before expiry: "
                 f"{fmt(s['min_slack_s'])} s")
    lines += class_summary_lines(s)  # each traffic class's own figures (two or more classes)
    why = summary_why(s)
    verdict = f"UNSAFE: {why}" if why else "SAFE: no silent drops, no rejected connects"
    if not why and "sample_fraction" in s:
        verdict = (f"SAFE: no silent drops or rejected connects in the sample; at most "
                   f"{fmt(s['expected_drops_per_day_ci95'][1])} silent drops expected per fleet-day (95 %)")
    lines.append(f"  verdict: {verdict}   [{s['run']['events']} events, {s['run']['wall_s']:.2f} s wall]")
    return "\n".join(lines)


def sample_line(s: dict) -> str:
    """What a sampled run's figures are: fleet estimates, with the headline intervals."""
    from sim.report.fmt import fmt

    def ci(name: str) -> str:
        lo_hi = s.get(f"{name}_ci95")
        return "[n/a]" if lo_hi is None else f"[{fmt(lo_hi[0])}, {fmt(lo_hi[1])}]"

    share = 100 * s["sample_fraction"]
    return (f"  sampled {s['sampled_connections']} of {s['fleet_connections']} slots ({share:.3g}%): counts"
            f" are fleet estimates. 95% intervals: silent drops {ci('silent_drops')}, failed requests "
            f"{ci('failed_requests')}, keepalive pkt/s {ci('keepalive_pps')}, new flows {ci('new_flows')}; "
            f"expected drops per fleet-day {fmt(s['expected_drops_per_day'])} {ci('expected_drops_per_day')}")

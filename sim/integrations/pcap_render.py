"""The human report of ``inspect CAPTURE.pcap`` (without ``--json``), from the report dict.

Flows are listed most notable first (UNSAFE, reset, retransmitting, with keepalive: ``rank_of``),
at most ``TEXT_FLOWS`` of them; ``--json`` has every flow. The last line is the fleet summary.
"""

from __future__ import annotations

from typing import Any

from sim.integrations.render import _wrap

TEXT_FLOWS = 50


def render_capture(rep: dict[str, Any]) -> str:
    """The text report of a capture."""
    a = rep["assumed"]
    lines = [f"{rep['file']}: {rep['title']}"]
    cap = rep["capture"]
    if rep["partial"]:
        d = cap["damage"]
        lines.append(f"PARTIAL: the capture is damaged at byte {d['offset']:,} ({d['problem']}); the report covers "
                     "the packets before it")
    if cap["start"]:
        lines.append(f"  starts {cap['start']}; times below are seconds from the first packet")
    if a["lb"]:
        lines.append(f"assumed: LB {a['lb']} (idle timeout {a['lb_idle_timeout_s']:g} s) on the captured flows, "
                     f"HZ={a['hz']} timer wheel")
    for f in rep["flows"]:
        lines += [""] + _flow(f)
    more = rep["summary"]["flows"] - len(rep["flows"])
    if more > 0:
        lines += ["", f"... and {more:,} more flows (--json lists every flow)"]
    if rep["warnings"]:
        lines += ["", "warnings:"] + [f"  - {w}" for w in rep["warnings"]]
    lines += ["", f"summary: {rep['summary']['text']}"]
    return "\n".join(_wrap(ln) for ln in lines)


def _who(addr: str, role: str | None) -> str:
    return f"{addr} ({role})" if role else addr


def _flow(f: dict[str, Any]) -> list[str]:
    if f["client"]:
        guess = "" if f["roles_from"] == "syn" else ", roles guessed from the ports"
        title = f"flow {f['id']}: {f['client']} (client) -> {f['server']} (server){guess}"
    else:
        title = f"flow {f['id']}: {f['endpoints'][0]} <-> {f['endpoints'][1]}"
    out = [title + f", {f['packets']:,} packets, {f['first_s']:.3f}-{f['last_s']:.3f} s"
           + (f", closed by {f['closed'].upper()}" if f["closed"] else "")]
    for k in (f["keepalive"], f["keepalive_peer"]):
        if k:
            out.append(_ka(k))
    if not f["keepalive"]:
        out.append("  keepalive: no probe seen")
    out.append(f"  longest idle {f['max_idle_s']:.3f} s (from {f['max_idle_at_s']:.3f} s)")
    for r in f["rsts"]:
        text = f"  RST at {r['at_s']:.3f} s from {_who(r['from'], r['role'])} after {r['after_idle_s']:.3f} s idle"
        out.append(text + (f": {r['hint']}" if r["hint"] else ""))
    if f["rst_count"] > len(f["rsts"]):
        out.append(f"  ... {f['rst_count'] - len(f['rsts'])} more RSTs")
    if f["retransmissions"]:
        out.append(f"  retransmissions: {f['retransmissions']} in {f['burst_count']} burst(s)")
        for b in f["retransmission_bursts"]:
            out.append(f"    from {_who(b['from'], b['role'])} at {b['at_s']:.3f} s: {b['segments']} segment(s) over "
                       f"{b['duration_s']:.3f} s, ended: {b['ended']}")
    v = f["verdict"]
    if v:
        word = {True: "SAFE", False: "UNSAFE", None: "not judged"}[v["safe"]]
        out.append(f"  vs {v['profile']} ({v['lb_idle_timeout_s']:g} s): {word}: {v['reason']}")
        p = v["predicted"]
        if p and p["margin_s"] is not None:
            out.append(f"    predicted margin {p['margin_s']:.3f} s at HZ={p['hz']} (worst timer-wheel lateness "
                       f"{p['lateness_s']:g} s), {p['other_margin_s']:.3f} s at HZ={p['other_hz']}")
    return out


def _ka(k: dict[str, Any]) -> str:
    head = f"  keepalive by {_who(k['by'], k['role'])}: {k['probes']} probe(s), {k['answered']} answered"
    bits = []
    s = k["setting"]
    if k["idle"] is not None:
        many = f" (up to {k['idle_max']:.3f} s over {k['idle_samples']})" if k["idle_samples"] > 1 else ""
        bits.append(f"idle before a probe {k['idle']:.3f} s{many}: TCP_KEEPIDLE {_range(s['idle'])}")
    if k["interval"] is not None:
        bits.append(f"unanswered probe to probe {k['interval']:.3f} s: TCP_KEEPINTVL {_range(s['interval'])}")
    if k["count"] is not None:
        bits.append(f"reset after {k['count']} unanswered: TCP_KEEPCNT {k['count']}")
    return head + ("; " + "; ".join(bits) if bits else "")


def _range(r: list[int] | None) -> str:
    if not r:
        return "?"
    return f"{r[1]}" if r[0] == r[1] else f"{r[0]}-{r[1]} (timer-wheel lateness)"

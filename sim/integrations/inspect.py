"""``inspect``: the effective keepalive of each hop in a user's artefact, a verdict against the
middlebox on that hop's own leg, and the known traps where what is declared is not what is in effect.

The pieces live in :mod:`effective` (what the kernel runs), :mod:`verdict` (margins against an LB
profile), :mod:`traps`, :mod:`ss_report` and :mod:`render`; this module builds the JSON-ready
report that ``--json`` prints and :func:`render_text` turns into the human report.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sim.facts.kernel import DEFAULT_SYSCTL, retries_timeout_s
from sim.integrations.effective import Effective, hop_effective, netns_effective
from sim.integrations.model import Parsed
from sim.integrations.render import render_text
from sim.integrations.ss_report import ss_report
from sim.integrations.traps import SYSCTL_TRAPS, dedupe, hop_traps
from sim.integrations.verdict import CMDLINE, Settings, Verdict, check_lb, max_safe_idle, parse_one_way_delay, verdict

__all__ = ["CMDLINE", "Settings", "check_lb", "hop_effective", "inspect", "max_safe_idle", "parse_one_way_delay",
           "render_text", "unsafe_verdicts"]


def inspect(parsed: Parsed, st: Settings) -> dict[str, Any]:
    """The report as a JSON-ready dict: settings, hops (or connections, or netns), warnings."""
    out: dict[str, Any] = {
        "file": parsed.file, "kind": parsed.kind, "title": parsed.title,
        "assumed": {"lb": st.lb, "lb_idle_timeout_s": st.lb_timeout_s(), "hz": st.hz,
                    "one_way_delay_s": st.one_way_delay_s, "hops_to_lb": 1, "upstream_lb": st.upstream_lb,
                    "upstream_lb_idle_timeout_s": st.lb_timeout_s(st.upstream_lb)},
        "notes": list(parsed.notes),
    }
    warnings: list[str] = list(parsed.warnings)
    if parsed.kind in ("ss", "netstat"):
        out.update(ss_report(parsed, st, warnings))
    elif parsed.kind == "sysctl":
        eff = netns_effective(parsed)
        out["netns"] = {
            "sysctl": {k: {"value": v, "line": n} for k, (v, n) in parsed.sysctl.items()},
            "keepalive": _eff_dict(eff),
            "verdict": verdict_dict(verdict(eff, st)),
        }
        r2 = dict(DEFAULT_SYSCTL, **{k: v for k, (v, _) in parsed.sysctl.items()})["net.ipv4.tcp_retries2"]
        out["netns"]["retries2_timeout_s"] = retries_timeout_s(r2)
        if not parsed.sysctl:
            warnings.append("none of net.ipv4.tcp_keepalive_time/intvl/probes or tcp_retries2 is in these lines: the "
                            "kernel defaults apply")
        if parsed.sysctl.get("net.ipv4.tcp_keepalive_probes", (9, 0))[0] == 0:
            warnings.append("net.ipv4.tcp_keepalive_probes = 0 kills an idle connection at the first keepalive "
                            "check, without sending a probe (R4)")
        warnings += SYSCTL_TRAPS
    else:
        out["hops"] = [_hop(hop, st, warnings) for hop in parsed.hops]
        n_up = sum(h["side"] == "cluster" for h in out["hops"])
        if st.lb and n_up and not st.upstream_lb:
            out["notes"].append(f"no LB verdict for the {n_up} upstream (cluster) hop(s): --lb {st.lb} is the "
                                "middlebox in front of Envoy (listener hops); give --upstream-lb PROFILE for the "
                                "middlebox between Envoy and its upstreams")
    out["warnings"] = dedupe(warnings)
    return out


def _hop(hop: Any, st: Settings, warnings: list[str]) -> dict[str, Any]:
    eff = hop_effective(hop)
    warnings += hop_traps(hop, eff)
    return {
        "side": hop.side, "name": hop.name, "port": hop.port, "context": hop.context,
        "origin": hop.origin, "source": hop.source, "line": hop.line,
        "listener_state": hop.listener_state, "bind_to_port": hop.bind_to_port,
        "declared": hop.socket_options is not None or hop.tcp_keepalive is not None,
        "socket_options": None if hop.socket_options is None else [
            {"level": o.level, "name": o.name, "option": o.label, "value": o.value, "state": o.state,
             "line": o.line} for o in hop.socket_options],
        "keepalive": _eff_dict(eff),
        "broken": hop.broken,
        "verdict": verdict_dict(verdict(eff, st, st.lb_for(hop.side), hop.broken)),
    }


def _eff_dict(eff: Effective) -> dict[str, Any]:
    d = asdict(eff)
    d["triple"] = eff.triple
    d["dead_peer_s"] = eff.dead_peer_s() if eff.enabled else None
    return d


def verdict_dict(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    d = asdict(v)
    d["max_safe_idle_s"] = {str(k): x for k, x in v.max_safe_idle_s.items()}
    return d


def unsafe_verdicts(rep: dict[str, Any]) -> list[str]:
    """What ``--fail-on-unsafe`` fails on: every verdict in the report that is not SAFE."""
    out = [f"{h['side']} {h['name']}" for h in rep.get("hops", []) if h["verdict"] and not h["verdict"]["safe"]]
    ns = rep.get("netns")
    if ns and ns["verdict"] and not ns["verdict"]["safe"]:
        out.append("the netns sysctls")
    lb = (rep.get("summary") or {}).get("lb")
    if lb and not lb["safe"]:
        out.append(f"{lb['unsafe_connections']} connection(s)")
    return out

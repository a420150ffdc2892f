"""The human report (``inspect`` without ``--json``), from the JSON-ready report dict."""

from __future__ import annotations

import textwrap
from typing import Any

from sim.facts.kernel import DEFAULT_SYSCTL
from sim.integrations.effective import OPTION_OF, SYSCTL_OF


def render_text(rep: dict[str, Any]) -> str:
    """The human report (``inspect`` without ``--json``)."""
    a = rep["assumed"]
    lines = [f"{rep['file']}: {rep['title']}"]
    delay = f"1 hop of {a['one_way_delay_s'] * 1000:g} ms one-way delay between the LB and the probing socket"
    if a["lb"]:
        lines.append(f"assumed: LB {a['lb']} (idle timeout {a['lb_idle_timeout_s']:g} s) in front of Envoy, "
                     f"HZ={a['hz']} timer wheel, {delay}")
    if a.get("upstream_lb"):
        lines.append(f"assumed: LB {a['upstream_lb']} (idle timeout {a['upstream_lb_idle_timeout_s']:g} s) between "
                     f"Envoy and its upstreams, HZ={a['hz']} timer wheel, {delay}")
    lines += [f"note: {n}" for n in rep["notes"]]
    if rep["kind"] in ("ss", "netstat"):
        lines += _render_ss(rep)
    elif rep["kind"] == "sysctl":
        lines += _render_sysctl(rep)
    else:
        summary = []
        quiet = [h for h in rep["hops"] if h["origin"] == "config_dump" and not h["keepalive"]["enabled"]
                 and not h["broken"]]
        for h in rep["hops"]:
            if h in quiet:
                continue
            lines += [""] + _render_hop(h)
            k = h["keepalive"]
            text = f"keepalive {k['triple']}" if k["enabled"] else "keepalive off"
            if k["user_timeout_ms"]:
                text += f", TCP_USER_TIMEOUT {k['user_timeout_ms']} ms"
            if h["broken"]:
                text += ", its connections FAIL"
            v = h["verdict"]
            if v:
                text += f", {'SAFE' if v['safe'] else 'UNSAFE'} vs {v['profile']}"
                if v["margin_s"] is not None:
                    text += f" (margin {v['margin_s']:.3f} s)"
            summary.append(f"  {h['side']} {h['name']}: {text}")
        if quiet:
            judged = f"; not protected against {a['lb']}" if a["lb"] else ""
            lines += ["", f"without keepalive (no socket_options / no tcp_keepalive: SO_KEEPALIVE stays off{judged}):"]
            lines += [f"  {h['side']} {h['name']}" + (f" (port {h['port']})" if h["port"] is not None else "")
                      for h in quiet]
        if summary:
            lines += ["", "summary:"] + summary
    if rep["warnings"]:
        lines += ["", "traps:"] + [f"  - {w}" for w in rep["warnings"]]
    return "\n".join(_wrap(ln) for ln in lines)


def _wrap(line: str, width: int = 110) -> str:
    """Wrap a long report line, continuing under its own indentation (list items: under the text)."""
    if len(line) <= width:
        return line
    body = line.lstrip(" ")
    indent = " " * (len(line) - len(body))
    extra = "  " if body.startswith("- ") else "  " if indent else "    "
    return textwrap.fill(body, width=width, initial_indent=indent, subsequent_indent=indent + extra,
                         break_long_words=False, break_on_hyphens=False)


def _hop_title(h: dict[str, Any]) -> str:
    bits = []
    if h["port"] is not None:
        bits.append(f"port {h['port']}")
    if h["context"]:
        bits.append(f"context {h['context']}")
    if h["listener_state"]:
        bits.append(h["listener_state"])
    extra = f" ({', '.join(bits)})" if bits else ""
    if h["side"] == "listener":
        return f"listener {h['name']}{extra}: downstream hop, the connections Envoy accepts"
    return f"cluster {h['name']}{extra}: upstream hop, Envoy's connections to the backend"


def _render_hop(h: dict[str, Any]) -> list[str]:
    at = f", line {h['line']}" if h["line"] else ""
    out = [_hop_title(h), f"  from {h['source']}{at}"]
    what = "upstream_bind_config socket options" if h["side"] == "cluster" else "socket options"
    if h["socket_options"]:
        out.append(f"  {what}:")
        width = max(len(o["option"]) for o in h["socket_options"])
        for o in h["socket_options"]:
            where = f"line {o['line']:<4} " if o["line"] else ""
            value = "(bytes)" if o["value"] is None else str(o["value"])
            out.append(f"    {where}{o['level']}/{o['name']:<3} {o['option']:<{width}} = {value:<6} "
                       f"{o['state'] or ''}".rstrip())
    elif h["side"] == "listener" and h["socket_options"] is None:
        out.append("  socket options: none")
    out += _render_keepalive(h["keepalive"])
    if h["broken"]:
        out.append(f"  BROKEN: {h['broken']}")
    out += _render_verdict(h["verdict"], h["keepalive"])
    return out


def _render_keepalive(k: dict[str, Any], title: str = "effective keepalive", sources: bool = True) -> list[str]:
    ut = k["sources"].get("user_timeout", "")
    user_timeout = (f"    TCP_USER_TIMEOUT {k['user_timeout_ms']} ms" + (f" ({ut})" if ut else "")
                    if k["user_timeout_ms"] else "    TCP_USER_TIMEOUT not set (0: off)")
    if not k["enabled"]:
        return [f"  {title}: off (SO_KEEPALIVE not set): no probes on this hop"] + ([user_timeout] if sources else [])
    detail = f"idle {k['idle']} s, interval {k['interval']} s, count {k['count']}"
    out = [f"  {title}: on, {k['triple']} ({detail})"]
    if sources:  # the sysctl report's table is the source of all three
        for key in ("idle", "interval", "count"):
            if key in k["fallbacks"]:
                out.append(f"    {OPTION_OF[key]} not set on the socket: falls back to {k['sources'][key]}")
            else:
                out.append(f"    {OPTION_OF[key]} {k[key]}: from {k['sources'][key]}")
        if not k["fallbacks"]:
            out.append("    all three set explicitly; nothing falls back to sysctls")
        out.append(user_timeout)
    elif k["user_timeout_ms"]:
        out.append(user_timeout)
    out.append(f"    first probe after {k['idle']} s idle; a dead peer is detected after {k['dead_peer_s']:g} s")
    return out


def _render_verdict(v: dict[str, Any] | None, k: dict[str, Any]) -> list[str]:
    if not v:
        return []
    head = f"  vs {v['profile']} (idle timeout {v['lb_idle_timeout_s']:g} s): "
    if v["margin_s"] is None:
        return [head + f"UNSAFE: {v['reason']}"]
    word = "SAFE" if v["safe"] else "UNSAFE"
    owd = v["one_way_delay_s"]
    out = [head + f"{word}, margin {v['margin_s']:.3f} s",
           f"    margin = {v['lb_idle_timeout_s']:g} - ({k['idle']} idle + {v['lateness_s']:g} worst timer-wheel "
           f"lateness at HZ={v['hz']} + 2 x 1 hop x {owd:g} s one-way delay); with exact timers "
           f"{v['nominal_margin_s']:.3f} s",
           f"    {v['reason']}"]
    safe = v["max_safe_idle_s"]
    best = ", ".join(f"{x} s at HZ={hz}" if x else f"none at HZ={hz}" for hz, x in safe.items())
    out.append(f"    timer-wheel caveat: the keepalive timer fires up to one wheel granularity late: "
               f"{v['lateness_s']:g} s for {k['idle']} s at HZ={v['hz']}, {v['other_lateness_s']:g} s at "
               f"HZ={v['other_hz']} (margin {v['other_margin_s']:.3f} s). Largest safe TCP_KEEPIDLE: {best}")
    return out


def _render_sysctl(rep: dict[str, Any]) -> list[str]:
    ns = rep["netns"]
    out = ["", "netns sysctls (used by sockets with SO_KEEPALIVE on and no per-socket TCP_KEEP* value):"]
    for name in (*SYSCTL_OF.values(), "net.ipv4.tcp_retries2"):
        got = ns["sysctl"].get(name)
        where = f"line {got['line']}" if got else "not in the lines: kernel default"
        value = got["value"] if got else DEFAULT_SYSCTL[name]
        out.append(f"  {name:<30} = {value:<6} ({where})")
    out += _render_keepalive(ns["keepalive"], "effective keepalive of a socket with only SO_KEEPALIVE=1", False)
    out.append(f"    data into a blackhole is given up after {ns['retries2_timeout_s']:g} s of retransmissions "
               "(tcp_retries2, R32)")
    out += _render_verdict(ns["verdict"], ns["keepalive"])
    return out


def _render_ss(rep: dict[str, Any]) -> list[str]:
    out = [""]
    for c in rep["connections"]:
        if rep["kind"] == "netstat":
            timer = c["timer_text"] or "no timer"
        else:
            timer = f"timer:({c['timer']},{c['timer_text']},{c['count']})" if c["timer"] else "no timer"
        out.append(f"  line {c['line']:<3} {c['state']:<10} {c['local']} -> {c['peer']}  {timer}")
        out.append(f"           {c['status']}")
    s = rep["summary"]
    out += ["", "summary:"]
    out.append(f"  {s['keepalive']} of {s['established']} established connection(s) in keepalive "
               f"(keepalive-protected); {s['unprotected']} ESTAB without a timer (NOT protected); "
               f"{s['hidden']} with the keepalive timer hidden by a retransmission/persist timer")
    if s["keepalive"]:
        shown = (s["left_min_text"] or "0", s["left_max_text"] or "0") if rep["kind"] == "ss" else ("", "")
        span = f"{shown[0]}-{shown[1]} " if shown[0] else ""
        out.append(f"  time left {span}({s['left_min_s']:g}-{s['left_max_s']:g} s): each timer fires then (up to "
                   f"{s['lateness_s']:g} s later on a HZ={rep['assumed']['hz']} timer wheel) and sends a probe if "
                   "the connection is still idle")
        out.append(f"  the largest time left, {s['idle_at_least_s']:g} s, means TCP_KEEPIDLE (or TCP_KEEPINTVL, if "
                   "larger) is at least that on that socket: a keepalive timer is never armed for longer")
        if s["probing"]:
            out.append(f"  {s['probing']} connection(s) have probes outstanding")
    lb = s.get("lb")
    if lb:
        head = f"  vs {lb['profile']} (idle timeout {lb['idle_timeout_s']:g} s): "
        best = f"{lb['max_safe_idle_s']} s at HZ={rep['assumed']['hz']}"
        if not lb["safe"]:
            why = []
            if lb["unprotected_connections"]:
                why.append(f"{lb['unprotected_connections']} ESTAB connection(s) have no keepalive timer (unprotected)")
            if lb["over_armed_connections"]:
                why.append(f"{lb['over_armed_connections']} connection(s) have a keepalive timer armed for longer than "
                           f"the largest safe TCP_KEEPIDLE ({best})")
            out.append(head + "UNSAFE: " + "; ".join(why))
        else:
            out.append(head + f"consistent with a safe setting: every timer is within the largest safe "
                       f"TCP_KEEPIDLE ({best}); ss cannot show the configured value, so inspect the EnvoyFilter or "
                       "config_dump too")
    return out

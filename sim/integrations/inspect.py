"""``inspect``: the effective keepalive of each hop in a user's artefact, a verdict against a
middlebox profile, and the known traps where what is declared is not what is in effect.

Effective values follow the kernel (kernel-keepalive.md R1, R2): a per-socket TCP_KEEPIDLE /
TCP_KEEPINTVL / TCP_KEEPCNT wins, else the socket's *own netns* sysctl, which in a fresh netns
(every pod) is the compile-time default 7200/75/9. Nothing is sent without SO_KEEPALIVE.

The verdict uses the sweep's predicted-margin formula (:func:`sim.report.verdict.predicted_margin_s`):
LB idle timeout − (I + worst timer-wheel lateness g(I) + 2 · hops · one-way delay), here with one
hop and, unless told otherwise, a 1 ms one-way delay. All times are in seconds.
"""

from __future__ import annotations

import difflib
import math
import textwrap
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from sim.config.durations import parse_duration
from sim.config.profiles import all_profiles, middlebox_spec
from sim.config.schema import KernelCfg, LbCfg, Scenario
from sim.errors import ConfigError
from sim.integrations.parse import HopDecl, Parsed, SsConn
from sim.model.kernel import DEFAULT_SYSCTL, MAX_TCP_KEEPIDLE, retries_timeout_s
from sim.report.verdict import predicted_margin_s, probe_lateness_max_s

SYSCTL_OF = {"idle": "net.ipv4.tcp_keepalive_time", "interval": "net.ipv4.tcp_keepalive_intvl",
             "count": "net.ipv4.tcp_keepalive_probes"}
OPTION_OF = {"idle": "TCP_KEEPIDLE", "interval": "TCP_KEEPINTVL", "count": "TCP_KEEPCNT"}
ISTIO_OF = {"idle": "time", "interval": "interval", "count": "probes"}
#: Where a command-line option error points (there is no file or line).
CMDLINE = "<command line>"
ENVOY_OF = {"idle": "keepalive_time", "interval": "keepalive_interval", "count": "keepalive_probes"}


# ----------------------------------------------------------------------------- settings
@dataclass
class Settings:
    """What ``inspect`` assumes: the LB profile (optional), the kernel HZ and the one-way delay
    between the LB and the probing socket (seconds)."""

    lb: str | None = None
    hz: int = 250
    one_way_delay_s: float = 0.001

    def lb_timeout_s(self) -> float | None:
        """The profile's idle timeout in seconds (None without ``--lb``)."""
        return middlebox_spec(LbCfg(profile=self.lb)).idle_timeout_s if self.lb else None


def check_lb(name: str | None) -> None:
    """ConfigError for an unknown ``--lb`` profile, with a did-you-mean and the allowed names."""
    if name is None:
        return
    profiles = all_profiles()
    if name not in profiles:
        close = [p for p in profiles if p.startswith(name)] or difflib.get_close_matches(name, list(profiles), n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"unknown profile {name!r}{hint}", file=CMDLINE, key="--lb", allowed=", ".join(profiles))


# ----------------------------------------------------------------------------- effective keepalive
@dataclass
class Effective:
    """A socket's keepalive as the kernel will run it: I, V (seconds) and C, each with its source."""

    enabled: bool
    idle: int
    interval: int
    count: int
    user_timeout_ms: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)  # which of idle/interval/count come from sysctls

    @property
    def triple(self) -> str:
        """``300/20/4``: idle/interval/count."""
        return f"{self.idle}/{self.interval}/{self.count}"

    def dead_peer_s(self) -> float:
        """Nominal time from the last packet to the kill of a dead peer (R17): I + C·V, or with
        TCP_USER_TIMEOUT U the first check after U with a probe out: I + max(1, ⌈(U − I)/V⌉)·V."""
        if self.user_timeout_ms > 0:
            u = self.user_timeout_ms / 1000.0
            return self.idle + max(1, math.ceil((u - self.idle) / self.interval)) * self.interval
        return self.idle + self.count * self.interval


def resolve(declared: dict[str, int | None], enabled: bool, sysctl: dict[str, int], netns: str,
            given_by: dict[str, str], user_timeout_ms: int = 0) -> Effective:
    """Fill what a socket does not set from its netns sysctls (R1, R2), recording the source."""
    vals: dict[str, int] = {}
    sources: dict[str, str] = {}
    fallbacks = []
    for key in ("idle", "interval", "count"):
        v = declared.get(key)
        if v is not None:
            vals[key], sources[key] = v, given_by[key]
        else:
            name = SYSCTL_OF[key]
            vals[key] = sysctl.get(name, DEFAULT_SYSCTL[name])
            default = "" if name in sysctl and sysctl[name] != DEFAULT_SYSCTL[name] else " (kernel default)"
            sources[key] = f"{name} = {vals[key]}{default} of {netns}"
            fallbacks.append(key)
    return Effective(enabled, vals["idle"], vals["interval"], vals["count"], user_timeout_ms, sources, fallbacks)


def hop_effective(hop: HopDecl, sysctl: dict[str, int] | None = None) -> Effective:
    """The effective keepalive of a listener or cluster hop. Socket options apply in order, so a
    repeated option's last value wins; a cluster's TcpKeepalive block always sets SO_KEEPALIVE."""
    sysctl = sysctl or {}
    netns = "the Envoy pod's netns"
    if hop.side == "listener":
        enabled = False
        declared: dict[str, int | None] = {"idle": None, "interval": None, "count": None}
        given: dict[str, str] = {}
        user_timeout = 0
        for so in hop.socket_options or []:
            at = f" (line {so.line})" if so.line else ""
            if (so.level, so.name) == (1, 9):
                enabled = bool(so.value)
            elif (so.level, so.name) == (6, 18):
                user_timeout = so.value or 0
            else:
                key = {(6, 4): "idle", (6, 5): "interval", (6, 6): "count"}.get((so.level, so.name))
                if key:
                    declared[key], given[key] = so.value, f"socket option {OPTION_OF[key]}{at}"
        return resolve(declared, enabled, sysctl, netns, given, user_timeout)
    if hop.tcp_keepalive is None:
        return resolve({}, False, sysctl, netns, {})
    names = ISTIO_OF if hop.origin == "destinationrule" else ENVOY_OF
    what = "tcpKeepalive" if hop.origin == "destinationrule" else "tcp_keepalive"
    given = {k: f"{what}.{names[k]}" for k in names}
    return resolve(hop.tcp_keepalive, True, sysctl, netns, given)


def netns_effective(parsed: Parsed) -> Effective:
    """What a socket with only SO_KEEPALIVE=1 gets in the netns these sysctl lines describe."""
    sysctl = {k: v for k, (v, _) in parsed.sysctl.items()}
    return resolve({}, True, sysctl, "this netns", {})


# ----------------------------------------------------------------------------- verdict
@dataclass
class Verdict:
    """A hop's keepalive against one LB profile (seconds)."""

    profile: str
    lb_idle_timeout_s: float
    hz: int
    one_way_delay_s: float
    safe: bool
    reason: str
    margin_s: float | None = None  # predicted: with the worst timer-wheel lateness
    nominal_margin_s: float | None = None  # with exact timers
    lateness_s: float | None = None  # g(I) at this HZ
    other_hz: int | None = None
    other_margin_s: float | None = None
    other_lateness_s: float | None = None
    max_safe_idle_s: dict[int, int | None] = field(default_factory=dict)  # HZ -> largest safe TCP_KEEPIDLE


def margin_s(idle: int, lb: str, hz: int, one_way_delay_s: float, *, exact: bool = False) -> float:
    """The sweep's predicted margin for a socket with TCP_KEEPIDLE ``idle`` (or the sysctl, above the
    setsockopt range) facing ``lb`` one hop away."""
    ka: dict[str, Any] = {"enabled": True}
    sysctl: dict[str, int] = {}
    if idle <= MAX_TCP_KEEPIDLE:
        ka["idle"] = idle
    else:
        sysctl["net.ipv4.tcp_keepalive_time"] = idle
    sc = Scenario.model_validate({
        "kernel": {"hz": hz, "timers": "exact" if exact else "wheel", "sysctl": sysctl},
        "network": {"one_way_delay": one_way_delay_s},
        "lb": {"profile": lb},
        "envoy": {"listener": {"keepalive": ka}},
    })
    m = predicted_margin_s(sc)
    assert m is not None  # the listener side has keepalive on by construction
    return m


@lru_cache(maxsize=64)  # a config_dump can hold dozens of hops judged against the same profile
def max_safe_idle(lb: str, hz: int, one_way_delay_s: float) -> int | None:
    """The largest TCP_KEEPIDLE whose predicted margin is >= 0 (the margin only falls as I grows:
    g(I) never shrinks), by bisection over 1..32767 s."""
    lo, hi = 1, MAX_TCP_KEEPIDLE
    if margin_s(lo, lb, hz, one_way_delay_s) < 0:
        return None
    if margin_s(hi, lb, hz, one_way_delay_s) >= 0:
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if margin_s(mid, lb, hz, one_way_delay_s) >= 0:
            lo = mid
        else:
            hi = mid
    return lo


def verdict(eff: Effective, st: Settings) -> Verdict | None:
    """SAFE when keepalive is on and the predicted margin (timer-wheel lateness included) is >= 0."""
    if not st.lb:
        return None
    spec = middlebox_spec(LbCfg(profile=st.lb))
    other = 1000 if st.hz != 1000 else 250
    v = Verdict(st.lb, spec.idle_timeout_s, st.hz, st.one_way_delay_s, False, "", other_hz=other)
    v.max_safe_idle_s = {hz: max_safe_idle(st.lb, hz, st.one_way_delay_s) for hz in (st.hz, other)}
    if spec.refreshed_by != "any_packet":
        v.reason = f"{st.lb} is refreshed only by packets with payload: keepalive probes do not keep its flows"
        return v
    if not eff.enabled:
        v.reason = f"no keepalive: an idle connection is forgotten by {st.lb} after {spec.idle_timeout_s:g} s"
        return v
    kernel = KernelCfg(hz=st.hz, timers="wheel")
    v.lateness_s = probe_lateness_max_s(eff.idle, kernel)
    v.margin_s = margin_s(eff.idle, st.lb, st.hz, st.one_way_delay_s)
    v.nominal_margin_s = margin_s(eff.idle, st.lb, st.hz, st.one_way_delay_s, exact=True)
    v.other_lateness_s = probe_lateness_max_s(eff.idle, KernelCfg(hz=other, timers="wheel"))
    v.other_margin_s = margin_s(eff.idle, st.lb, other, st.one_way_delay_s)
    v.safe = v.margin_s >= 0
    if v.safe:
        v.reason = "the first probe reaches the LB before it forgets the flow, even at the worst timer lateness"
    elif v.nominal_margin_s > 0:
        v.reason = (f"nominally {eff.idle} s < {spec.idle_timeout_s:g} s, but at HZ={st.hz} the keepalive timer can "
                    f"fire {v.lateness_s:g} s late and the flow is gone by then")
    else:
        v.reason = f"TCP_KEEPIDLE {eff.idle} s is not below the {spec.idle_timeout_s:g} s idle timeout"
    return v


# ----------------------------------------------------------------------------- traps
def hop_traps(hop: HopDecl, eff: Effective) -> list[str]:
    """The known ways this hop's declared keepalive is not what the sockets run."""
    out = list(hop.notes)
    if hop.side == "listener":
        opts = hop.socket_options
        if opts is None and hop.origin != "config_dump":  # a dump lists every listener; shown compactly
            out.append(f"listener {hop.name}: no socket_options, so Envoy leaves SO_KEEPALIVE off on the connections "
                       "it accepts")
        elif not eff.enabled and any((o.level, o.name) in ((6, 4), (6, 5), (6, 6)) for o in opts or []):
            out.append(f"listener {hop.name}: TCP_KEEPIDLE/INTVL/CNT without SO_KEEPALIVE=1 (level 1, name 9) are "
                       "stored but never used: no probe is sent")
        if eff.enabled:
            out.append("Envoy sets listener socket_options on the listening socket; the connections it accepts get "
                       "them because Linux copies SO_KEEPALIVE and TCP_KEEP* from the listening socket. Declared is "
                       "not always effective: options on the listening socket only, missing from accepted sockets, "
                       "in Envoy >= 1.17 (envoy #18107), and socket_options changes on a listener update ignored "
                       "before envoy PR #23189. Restart the gateway pods after applying, then check the accepted "
                       "connections: `ss -nteo` piped to `python -m sim inspect -` must show timer:(keepalive,...)")
            if any(o.state == "STATE_LISTENING" for o in opts or []):
                out.append(f"listener {hop.name}: STATE_LISTENING keepalive options are the envoy #18107 setup that "
                           "stopped working in 1.17; the seed uses STATE_PREBIND")
        if hop.context == "SIDECAR_OUTBOUND":
            out.append(f"listener {hop.name}: SIDECAR_OUTBOUND listeners accept the app's own connections to its "
                       "sidecar inside the pod; their probes never reach a load balancer. For connections leaving the "
                       "pod use a DestinationRule tcpKeepalive (cluster side)")
        if hop.bind_to_port is False:
            out.append(f"listener {hop.name}: bind_to_port is false, so it has no listening socket of its own; "
                       "connections arrive through another listener (virtualInbound/virtualOutbound) whose "
                       "socket_options apply instead")
        if hop.listener_state in ("warming", "draining"):
            out.append(f"listener {hop.name} is {hop.listener_state}: not the one serving new connections")
        if hop.origin == "config_dump" and eff.enabled:
            out.append("config_dump shows what Envoy was told, not what its sockets have (istio #32289): confirm "
                       "with `ss -nteo` on the gateway pod")
    else:
        if hop.origin == "destinationrule":
            out.append("DestinationRule tcpKeepalive applies to Envoy's upstream connections only (Envoy -> "
                       f"{hop.name.split(' ')[0]}); it does not touch client -> gateway connections. An LB in front "
                       "of the gateway needs EnvoyFilter LISTENER socket_options "
                       "(`python -m sim recommend CONFIG --emit envoyfilter`)")
        if hop.tcp_keepalive is None and hop.origin != "config_dump":
            out.append(f"cluster {hop.name}: no tcpKeepalive, so Envoy leaves SO_KEEPALIVE off on its upstream "
                       "connections")
    if eff.enabled and eff.fallbacks:
        names = ", ".join(SYSCTL_OF[k] for k in eff.fallbacks)
        out.append(f"{hop.side} {hop.name}: {', '.join(OPTION_OF[k] for k in eff.fallbacks)} not set, so the kernel "
                   f"uses {names} of the Envoy pod's own network namespace. Sysctls are per netns (Linux >= 4.5) and "
                   "a pod starts from the kernel defaults 7200/75/9, whatever the node has")
    return out


SYSCTL_TRAPS = [
    "these sysctls are per network namespace (Linux >= 4.5): a pod starts from the kernel defaults 7200/75/9, "
    "whatever the node's values. Values read or set on the node do not reach pods; read them inside the pod "
    "(`kubectl exec POD -- sysctl net.ipv4.tcp_keepalive_time`) and set them in the pod's "
    "securityContext.sysctls",
    "they only apply to sockets with SO_KEEPALIVE on and no per-socket TCP_KEEP* values: an app that never "
    "enables SO_KEEPALIVE sends no probe whatever these say (configs/nlb-long-sql.yaml)",
]


def dedupe(items: list[str]) -> list[str]:
    """Keep the first of each repeated warning, in order."""
    seen: set[str] = set()
    return [x for x in items if not (x in seen or seen.add(x))]


# ----------------------------------------------------------------------------- report
def inspect(parsed: Parsed, st: Settings) -> dict[str, Any]:
    """The report as a JSON-ready dict: settings, hops (or connections, or netns), warnings."""
    out: dict[str, Any] = {
        "file": parsed.file, "kind": parsed.kind, "title": parsed.title,
        "assumed": {"lb": st.lb, "lb_idle_timeout_s": st.lb_timeout_s(), "hz": st.hz,
                    "one_way_delay_s": st.one_way_delay_s, "hops_to_lb": 1},
        "notes": list(parsed.notes),
    }
    warnings: list[str] = []
    if parsed.kind == "ss":
        out.update(_ss_report(parsed, st, warnings))
    elif parsed.kind == "sysctl":
        eff = netns_effective(parsed)
        out["netns"] = {
            "sysctl": {k: {"value": v, "line": n} for k, (v, n) in parsed.sysctl.items()},
            "keepalive": _eff_dict(eff),
            "verdict": _verdict_dict(verdict(eff, st)),
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
        hops = []
        for hop in parsed.hops:
            eff = hop_effective(hop)
            hops.append({
                "side": hop.side, "name": hop.name, "port": hop.port, "context": hop.context,
                "origin": hop.origin, "source": hop.source, "line": hop.line,
                "listener_state": hop.listener_state, "bind_to_port": hop.bind_to_port,
                "declared": hop.socket_options is not None or hop.tcp_keepalive is not None,
                "socket_options": None if hop.socket_options is None else [
                    {"level": o.level, "name": o.name, "option": o.label, "value": o.value, "state": o.state,
                     "line": o.line} for o in hop.socket_options],
                "keepalive": _eff_dict(eff),
                "verdict": _verdict_dict(verdict(eff, st)),
            })
            warnings += hop_traps(hop, eff)
        out["hops"] = hops
    out["warnings"] = dedupe(warnings)
    return out


def _eff_dict(eff: Effective) -> dict[str, Any]:
    d = asdict(eff)
    d["triple"] = eff.triple
    d["dead_peer_s"] = eff.dead_peer_s() if eff.enabled else None
    return d


def _verdict_dict(v: Verdict | None) -> dict[str, Any] | None:
    if v is None:
        return None
    d = asdict(v)
    d["max_safe_idle_s"] = {str(k): x for k, x in v.max_safe_idle_s.items()}
    return d


def _ss_report(parsed: Parsed, st: Settings, warnings: list[str]) -> dict[str, Any]:
    conns = []
    for c in parsed.conns:
        conns.append({**asdict(c), "protected": _protected(c), "status": _ss_status(c)})
    estab = [c for c in parsed.conns if c.state in ("ESTAB", "ESTAB?", "CLOSE-WAIT")]
    ka = [c for c in estab if c.timer == "keepalive"]
    summary: dict[str, Any] = {"established": len(estab), "keepalive": len(ka),
                               "without_timer": sum(c.timer is None for c in estab),
                               "hidden": sum(c.timer in ("on", "persist") for c in estab)}
    if ka:
        lo = min(ka, key=lambda c: c.left_s or 0.0)
        hi = max(ka, key=lambda c: c.left_s or 0.0)
        wheel = KernelCfg(hz=st.hz, timers="wheel")
        summary.update(left_min_s=lo.left_s, left_max_s=hi.left_s, left_min_text=lo.timer_text,
                       left_max_text=hi.timer_text, idle_at_least_s=hi.left_s,
                       lateness_s=probe_lateness_max_s(max(1, int(hi.left_s or 0)), wheel),
                       probing=sum((c.count or 0) > 0 for c in ka))
    if st.lb and ka:
        timeout = st.lb_timeout_s() or 0.0
        best = max_safe_idle(st.lb, st.hz, st.one_way_delay_s)
        # A timer is armed for at most max(TCP_KEEPIDLE, TCP_KEEPINTVL): one with more time left than
        # the largest safe TCP_KEEPIDLE belongs to a socket that the LB will drop when idle.
        over = [c for c in ka if best is None or (c.left_s or 0.0) > best]
        for d in conns:
            if d["timer"] == "keepalive" and (best is None or (d["left_s"] or 0.0) > best):
                d["status"] += f"; UNSAFE vs {st.lb}: armed for more than the largest safe TCP_KEEPIDLE ({best} s)"
        summary["lb"] = {"profile": st.lb, "idle_timeout_s": timeout, "max_safe_idle_s": best,
                         "unsafe_connections": len(over)}
    if summary["without_timer"]:
        warnings.append("established connections without any timer have SO_KEEPALIVE off: the app (or Envoy's "
                        "listener) never enabled it, or the options were set on the wrong socket")
    if summary["hidden"]:
        warnings.append("timer:(on,...) or (persist,...) hides the keepalive timer while data is unacknowledged; "
                        "those connections cannot be judged from this snapshot")
    if any((c.count or 0) > 0 for c in ka):
        warnings.append("keepalive connections with probes outstanding (the last timer field > 0) are not being "
                        "answered: the peer or the path is gone, and the kernel will kill them after TCP_KEEPCNT")
    if any(c.timer == "keepalive" and c.timer_text and "." in c.timer_text and c.timer_text.endswith("ms")
           for c in parsed.conns):
        warnings.append("iproute2 < 6.11 prints 1.988ms for 1.988 s (print_ms_timer): read as seconds here")
    return {"connections": conns, "summary": summary}


def _protected(c: SsConn) -> bool | None:
    if c.timer == "keepalive":
        return True
    if c.timer in ("on", "persist"):
        return None  # hidden behind the retransmission / zero-window timer
    return False if c.state.startswith("ESTAB") else None


def _ss_status(c: SsConn) -> str:
    if c.state == "LISTEN":
        return "listening socket (never shows a keepalive timer; its accepted connections do)"
    if c.timer == "keepalive":
        if c.state not in ("ESTAB", "ESTAB?"):
            return f"{c.state}: sk_timer pending (FIN_WAIT2 timer of an orphan, or keepalive)"
        when = "overdue, waiting for its timer-wheel bucket" if c.timer_text == "" else \
            f"fires in {_secs(c.left_s)} ({c.timer_text})"
        probes = f"{c.count} probe(s) unanswered" if c.count else "no probe outstanding"
        return f"keepalive-protected: timer {when}, {probes}"
    if c.timer == "on":
        return f"retransmitting ({c.count} so far): keepalive hidden while data is unacknowledged"
    if c.timer == "persist":
        return "zero-window probing: keepalive hidden"
    if c.timer == "timewait":
        return "TIME-WAIT"
    if c.state.startswith("ESTAB"):
        return "NOT protected: no keepalive timer (SO_KEEPALIVE off)"
    return c.state


def _secs(v: float | None) -> str:
    return "?" if v is None else f"{v:g} s"


# ----------------------------------------------------------------------------- text rendering
def render_text(rep: dict[str, Any]) -> str:
    """The human report (``inspect`` without ``--json``)."""
    a = rep["assumed"]
    lines = [f"{rep['file']}: {rep['title']}"]
    wrap = _wrap
    if a["lb"]:
        lines.append(f"assumed: LB {a['lb']} (idle timeout {a['lb_idle_timeout_s']:g} s), HZ={a['hz']} timer wheel, "
                     f"1 hop of {a['one_way_delay_s'] * 1000:g} ms one-way delay between the LB and the probing socket")
    lines += [f"note: {n}" for n in rep["notes"]]
    if rep["kind"] == "ss":
        lines += _render_ss(rep)
    elif rep["kind"] == "sysctl":
        lines += _render_sysctl(rep)
    else:
        summary = []
        quiet = [h for h in rep["hops"] if h["origin"] == "config_dump" and not h["keepalive"]["enabled"]]
        for h in rep["hops"]:
            if h in quiet:
                continue
            lines += [""] + _render_hop(h)
            k = h["keepalive"]
            text = f"keepalive {k['triple']}" if k["enabled"] else "keepalive off"
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
        lines += ["", "summary:"] + summary
    if rep["warnings"]:
        lines += ["", "traps:"] + [f"  - {w}" for w in rep["warnings"]]
    return "\n".join(wrap(ln) for ln in lines)


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
    if h["socket_options"]:
        out.append("  socket options:")
        width = max(len(o["option"]) for o in h["socket_options"])
        for o in h["socket_options"]:
            where = f"line {o['line']:<4} " if o["line"] else ""
            value = "(bytes)" if o["value"] is None else str(o["value"])
            out.append(f"    {where}{o['level']}/{o['name']:<3} {o['option']:<{width}} = {value:<6} "
                       f"{o['state'] or ''}".rstrip())
    elif h["side"] == "listener" and h["socket_options"] is None:
        out.append("  socket options: none")
    out += _render_keepalive(h["keepalive"])
    out += _render_verdict(h["verdict"], h["keepalive"])
    return out


def _render_keepalive(k: dict[str, Any], title: str = "effective keepalive", sources: bool = True) -> list[str]:
    if not k["enabled"]:
        return [f"  {title}: off (SO_KEEPALIVE not set): no probes on this hop"]
    detail = f"idle {k['idle']} s, interval {k['interval']} s, count {k['count']}"
    out = [f"  {title}: on, {k['triple']} ({detail})"]
    if not sources:
        pass  # the sysctl report: its table is the source of all three
    elif k["fallbacks"]:
        for key in k["fallbacks"]:
            out.append(f"    {OPTION_OF[key]} not set on the socket: falls back to {k['sources'][key]}")
    else:
        out.append("    all three set explicitly; nothing falls back to sysctls")
    if k["user_timeout_ms"]:
        out.append(f"    TCP_USER_TIMEOUT {k['user_timeout_ms']} ms")
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
        timer = f"timer:({c['timer']},{c['timer_text']},{c['count']})" if c["timer"] else "no timer"
        out.append(f"  line {c['line']:<3} {c['state']:<10} {c['local']} -> {c['peer']}  {timer}")
        out.append(f"           {c['status']}")
    s = rep["summary"]
    out += ["", "summary:"]
    out.append(f"  {s['keepalive']} of {s['established']} established connection(s) in keepalive "
               f"(keepalive-protected); {s['without_timer']} without a timer (not protected); "
               f"{s['hidden']} with the keepalive timer hidden by a retransmission/persist timer")
    if s["keepalive"]:
        out.append(f"  time left {s['left_min_text'] or '0'}-{s['left_max_text'] or '0'} "
                   f"({s['left_min_s']:g}-{s['left_max_s']:g} s): each timer fires then (up to "
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
        if lb["unsafe_connections"]:
            out.append(head + f"UNSAFE: {lb['unsafe_connections']} connection(s) have a keepalive timer armed for "
                       f"longer than the largest safe TCP_KEEPIDLE ({best})")
        else:
            out.append(head + f"consistent with a safe setting: every timer is within the largest safe "
                       f"TCP_KEEPIDLE ({best}); ss cannot show the configured value, so inspect the EnvoyFilter or "
                       "config_dump too")
    return out


def parse_one_way_delay(text: str) -> float:
    """``--one-way-delay`` in seconds (a duration such as ``1ms``); ConfigError if not > 0."""
    try:
        v = parse_duration(text)
    except ValueError as exc:
        problem, _, allowed = str(exc).partition(" (allowed: ")
        raise ConfigError(problem, file=CMDLINE, key="--one-way-delay", allowed=allowed.rstrip(")")) from None
    if v <= 0:
        raise ConfigError(f"{text!r} must be > 0", file=CMDLINE, key="--one-way-delay",
                          allowed="a duration such as 1ms")
    return v

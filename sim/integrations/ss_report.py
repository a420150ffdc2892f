"""The ``ss``/``netstat`` part of the report: each socket's status, and the summary and verdict.

An ESTAB connection without a keepalive timer has SO_KEEPALIVE off: it is unprotected, and with
``--lb`` it makes the verdict UNSAFE (an idle flow is forgotten by the LB). A keepalive timer
armed for longer than the largest safe TCP_KEEPIDLE also does (a timer is armed for at most
max(TCP_KEEPIDLE, TCP_KEEPINTVL)). ``on``/``persist`` timers hide the keepalive timer (R38).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sim.config.schema import KernelCfg
from sim.integrations.model import Parsed, SsConn
from sim.integrations.verdict import Settings, max_safe_idle
from sim.report.verdict import probe_lateness_max_s

_ESTAB = ("ESTAB", "ESTAB?")


def ss_report(parsed: Parsed, st: Settings, warnings: list[str]) -> dict[str, Any]:
    """``connections`` (each with ``protected`` and ``status``) and ``summary`` (with ``lb`` when
    ``--lb`` is given: ``safe``, ``unprotected_connections``, ``over_armed_connections``)."""
    conns = []
    for c in parsed.conns:
        conns.append({**asdict(c), "protected": _protected(c), "status": _ss_status(c)})
    estab = [c for c in parsed.conns if c.state in ("ESTAB", "ESTAB?", "CLOSE-WAIT")]
    ka = [c for c in estab if c.timer == "keepalive"]
    unprotected = [c for c in parsed.conns if c.state in _ESTAB and c.timer is None]
    summary: dict[str, Any] = {"established": len(estab), "keepalive": len(ka),
                               "without_timer": sum(c.timer is None for c in estab),
                               "unprotected": len(unprotected),
                               "hidden": sum(c.timer in ("on", "persist") for c in estab)}
    if ka:
        lo = min(ka, key=lambda c: c.left_s or 0.0)
        hi = max(ka, key=lambda c: c.left_s or 0.0)
        wheel = KernelCfg(hz=st.hz, timers="wheel")
        summary.update(left_min_s=lo.left_s, left_max_s=hi.left_s, left_min_text=lo.timer_text,
                       left_max_text=hi.timer_text, idle_at_least_s=hi.left_s,
                       lateness_s=probe_lateness_max_s(max(1, int(hi.left_s or 0)), wheel),
                       probing=sum((c.count or 0) > 0 for c in ka))
    if st.lb and (ka or unprotected):
        timeout = st.lb_timeout_s() or 0.0
        best = max_safe_idle(st.lb, st.hz, st.one_way_delay_s)
        # A timer is armed for at most max(TCP_KEEPIDLE, TCP_KEEPINTVL): one with more time left than
        # the largest safe TCP_KEEPIDLE belongs to a socket that the LB will drop when idle.
        over = [c for c in ka if c.state in _ESTAB and (best is None or (c.left_s or 0.0) > best)]
        for d in conns:
            if d["timer"] == "keepalive" and d["state"] in _ESTAB and (best is None or (d["left_s"] or 0.0) > best):
                d["status"] += f"; UNSAFE vs {st.lb}: armed for more than the largest safe TCP_KEEPIDLE ({best} s)"
            elif d["timer"] is None and d["state"] in _ESTAB:
                d["status"] += f"; UNSAFE vs {st.lb}: forgotten after {timeout:g} s idle"
        summary["lb"] = {"profile": st.lb, "idle_timeout_s": timeout, "max_safe_idle_s": best,
                         "unsafe_connections": len(over) + len(unprotected), "over_armed_connections": len(over),
                         "unprotected_connections": len(unprotected), "safe": not over and not unprotected}
    if summary["unprotected"]:
        warnings.append(f"{summary['unprotected']} ESTAB connection(s) without any timer have SO_KEEPALIVE off and are "
                        "not protected: the app (or Envoy's listener) never enabled it, or the options were set on the "
                        "wrong socket")
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


def _ss_status(c: SsConn) -> str:  # noqa: PLR0911 - one line per timer kind
    if c.state == "LISTEN":
        return "listening socket (never shows a keepalive timer; its accepted connections do)"
    if c.timer == "keepalive":
        if c.state not in ("ESTAB", "ESTAB?"):
            return f"{c.state}: sk_timer pending (FIN_WAIT2 timer of an orphan, or keepalive)"
        when = "overdue, waiting for its timer-wheel bucket" if c.timer_text == "" or c.left_s == 0 else \
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


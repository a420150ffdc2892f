"""How numbers, swept values and settings are written in tables, plots and the CLI's text."""

from __future__ import annotations

import json
import math
from typing import Any


def fmt(v: Any) -> str:
    """A figure for a table: 3 significant digits, thousands separated, NaN as a dash."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "**NO**"
    if isinstance(v, float):
        if math.isinf(v):
            return "∞"
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, (list, tuple)) and len(v) == 2:  # an interval: [lo, hi]
        return f"[{fmt(float(v[0]))}, {fmt(float(v[1]))}]"
    return str(v)


def fmt_count(v: float) -> str:
    """A count or a mean count: ``5264``, not ``5264.0``; ``2.5`` stays."""
    if float(v).is_integer():
        return f"{int(v)}"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"


def fmt_param(v: Any) -> str:
    """A swept value: off/on, keepalive mappings as idle/interval/count (- = sysctl), whole numbers
    without ``.0``."""
    if hasattr(v, "item"):
        v = v.item()
    if v is False or v == "false":
        return "off"
    if v is True or v == "true":
        return "on"
    if isinstance(v, str) and v.startswith("{"):
        try:
            d = json.loads(v)
        except ValueError:
            return v
        if isinstance(d, dict) and set(d) <= {"idle", "interval", "count"}:
            return "/".join(str(d.get(k, "-")) for k in ("idle", "interval", "count"))
        return v
    if isinstance(v, float) and v.is_integer():
        return f"{int(v)}"
    return fmt(v)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each dotted key's shortest suffix that tells it apart from the others:
    ``envoy.listener.keepalive.idle`` and ``envoy.upstream.keepalive.idle`` become
    ``listener.keepalive.idle`` and ``upstream.keepalive.idle``; ``kernel.hz`` becomes ``hz``."""
    out = {}
    for key in keys:
        parts = key.split(".")
        for n in range(1, len(parts) + 1):
            tail = ".".join(parts[-n:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                out[key] = tail
                break
        else:
            out[key] = key
    return out


def point_label(row: Any, keys: list[str], shorts: dict[str, str] | None = None) -> str:
    """``idle=300, hz=250`` for one grid point (or knob setting)."""
    shorts = shorts or short_keys(keys)
    return ", ".join(f"{shorts[k]}={fmt_param(row[k])}" for k in keys)


def describe_dist(spec: tuple[str, float, float]) -> str:
    """A distribution of durations in words: ``fixed 360 s``, ``uniform 60 s to 3,600 s`` ..."""
    kind, a, b = spec
    if kind == "fixed":
        return f"fixed {a:,g} s"
    if kind == "exponential":
        return f"exponential, mean {a:,g} s"
    if kind == "uniform":
        return f"uniform {a:,g} s to {b:,g} s"
    return f"lognormal, median {a:,g} s, sigma {b:g}"


def recommendation_text(rec: dict | None, has_knobs: bool, device: str = "the client-facing LB") -> str:
    """The recommendation in one line (CLI, notebook)."""
    if not rec:
        return ("recommended: none of the swept settings is safe under every condition" if has_knobs
                else "recommended: nothing (the sweep has no knobs)")
    params = ", ".join(f"{k}={fmt_param(v)}" for k, v in rec["params"].items())
    return (f"recommended: {params} (slack {fmt(rec.get('min_slack_s'))} s, predicted margin "
            f"{fmt(rec.get('predicted_margin_s'))} s, {fmt(rec.get('ka_pps_per_1000'))} keepalive pkt/s per 1k "
            f"conns at {device})")


#: the NLCU dimensions (sim.metrics.capacity.NLCU_DIMENSIONS) in words
NLCU_WORDS = {"new_flows": "new flows", "active_flows": "active flows", "bytes": "processed bytes"}


#: each outcome in the words of ``run``'s summary (docs/outputs.md#outcomes)
OUTCOME_WORDS = {
    "ok": "fine",
    "closed_idle": "closed by an idle timeout before any drop",
    "reset_on_send": "sent data into the forgotten flow and got an RST (request failed)",
    "reset_on_probe": "its keepalive probe got an RST (detected, no request lost)",
    "timeout_keepalive": "keepalive gave up (ETIMEDOUT)",
    "timeout_retrans": "data hung until ETIMEDOUT",
    "reset_on_expiry": "the LB announced the expiry",
    "zombie": "still believes it is open (zombie)",
    "reset_by_peer": "got an RST from the peer host",
    "closed_after_drop": "closed it itself, after the LB had forgotten it",
    "race_reset": "sent a request as the server closed the idle connection (503, race)",
    "goaway": "was sent GOAWAY (too_many_pings) by the gRPC server",
}

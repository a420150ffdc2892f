"""``inspect CAPTURE.pcap|.pcapng``: the JSON-ready report of a capture, flow by flow, and its verdict.

The flows come from :mod:`pcap_flows` (one streaming pass). The verdict against ``--lb`` is the
one ``inspect`` gives an EnvoyFilter hop (:func:`sim.integrations.verdict.verdict`: the predicted
margin with the worst timer-wheel lateness), applied to the keepalive setting the capture shows,
plus what the capture itself proves: a flow seen idle for the LB's whole idle timeout was forgotten
by it, whatever its keepalive.

Observed times include the timer wheel's lateness (R40): a probe fires up to one wheel granularity
g after it is due, so the setting behind an observed idle time x is in [x − g(x), x]
(``setting``); the verdict judges the largest of these, as the conservative reading.
"""

from __future__ import annotations

import math
import socket
from datetime import UTC, datetime
from typing import IO, Any

from sim.config.schema import KernelCfg
from sim.integrations.effective import Effective
from sim.integrations.inspect import _verdict_dict
from sim.integrations.pcap_flows import DEFAULT_MAX_FLOWS, DUP_S, Flow, KaStats, Scan, Side, scan
from sim.integrations.pcap_read import LINKTYPES, Capture
from sim.integrations.verdict import Settings, verdict
from sim.report.verdict import probe_lateness_max_s

#: slack (s) for capture timestamps when turning an observed time into the setting behind it
_TOL_S = 0.002
#: ports below this are taken for the server's when the handshake was not captured
_SERVICE_PORT = 32768


def inspect_capture(fh: IO[bytes], file: str, st: Settings, max_flows: int = DEFAULT_MAX_FLOWS) -> dict[str, Any]:
    """Read the capture ``fh`` in one pass and build the report. Raises ValueError when it is not a
    capture; a damaged capture gives a report with ``partial: true`` and ``capture.damage``."""
    cap = Capture(fh)
    res = scan(cap.packets(), max_flows)
    return build_report(res, cap, file, st)


def build_report(res: Scan, cap: Capture, file: str, st: Settings) -> dict[str, Any]:
    """The report dict from a finished :class:`Scan`."""
    t0 = res.first_ts or 0.0
    cache: dict[tuple[int, int, int], dict[str, Any] | None] = {}
    flows = [_flow(f, t0, st, cache) for f in res.flows]
    links = ", ".join(LINKTYPES.get(lt, f"link type {lt}") for lt in dict.fromkeys(cap.linktypes)) or "no interface"
    partial = res.damage is not None
    title = f"{cap.format} capture ({links}), {res.packets:,} packets"
    if res.packets:
        title += f" over {max(0.0, res.last_ts - t0):,.1f} s"
    capture = {
        "format": cap.format, "linktypes": list(dict.fromkeys(cap.linktypes)), "packets": res.packets,
        "tcp_packets": res.tcp, "other_packets": res.other, "short_packets": res.short, "duplicates": res.dups,
        "start": datetime.fromtimestamp(t0, UTC).isoformat() if res.packets and 0 <= t0 < 1e11 else None,
        "duration_s": round(max(0.0, res.last_ts - t0), 6), "max_flows": res.max_flows,
        "untracked_packets": res.untracked, "untracked_syns": res.untracked_syns,
        "damage": None if res.damage is None else {"problem": res.damage.problem, "offset": res.damage.offset},
    }
    warnings = []
    if res.untracked:
        warnings.append(f"the flow table is full at {res.max_flows:,} flows (--max-flows): {res.untracked:,} packets "
                        f"of later flows ({res.untracked_syns:,} SYNs) were not analysed")
    unknown = sorted(res.linktypes - set(LINKTYPES))
    if unknown:
        warnings.append(f"packets of link type(s) {', '.join(map(str, unknown))} were skipped (read: "
                        f"{', '.join(sorted(set(LINKTYPES.values())))})")
    if res.dups:
        warnings.append(f"{res.dups:,} packets were captured twice within {DUP_S * 1000:g} ms (`tcpdump -i any` on a "
                        "node sees a pod's packet on two interfaces): counted once")
    return {
        "file": file, "kind": cap.format, "title": title, "partial": partial,
        "assumed": {"lb": st.lb, "lb_idle_timeout_s": st.lb_timeout_s(), "hz": st.hz,
                    "one_way_delay_s": st.one_way_delay_s},
        "capture": capture, "flows": flows, "summary": _summary(flows, st, partial, res),
        "notes": [], "warnings": warnings,
    }


def endpoint(side: Side) -> str:
    """``10.0.0.1:443`` or ``[2001:db8::1]:443`` of a side's sender."""
    key = side.key
    n = (len(key) - 4) // 2
    port = key[2 * n] << 8 | key[2 * n + 1]
    if n == 4:
        return f"{socket.inet_ntop(socket.AF_INET, key[:4])}:{port}"
    return f"[{socket.inet_ntop(socket.AF_INET6, key[:n])}]:{port}"


def _port(side: Side) -> int:
    n = (len(side.key) - 4) // 2
    return side.key[2 * n] << 8 | side.key[2 * n + 1]


def _roles(f: Flow) -> tuple[Side | None, str | None]:
    """(the client side, how it is known): the SYN's sender, else the side with the higher port."""
    if f.client is not None:
        return f.client, "syn"
    pa, pb = _port(f.a), _port(f.b)
    if pa == pb or min(pa, pb) >= _SERVICE_PORT:
        return None, None
    return (f.a if pa > pb else f.b), "port"


def setting_range(observed_s: float, hz: int) -> list[int] | None:
    """The whole-second settings whose timer, fired up to one wheel granularity late at ``hz`` (R40),
    gives ``observed_s``: [lo, hi] (None when none can)."""
    hi = math.floor(observed_s + _TOL_S)
    if hi < 1:
        return None
    g = probe_lateness_max_s(hi, KernelCfg(hz=hz, timers="wheel"))
    return [max(1, math.ceil(observed_s - g - _TOL_S)), hi]


def _ka(side: Side, role: str | None, st: Settings) -> dict[str, Any] | None:
    k: KaStats | None = side.ka
    if k is None or not k.probes:
        return None
    idle = round(k.idle_min, 6) if k.idle_n else None
    intvl = round(k.intvl_min, 6) if k.intvl_n else None
    return {
        "by": endpoint(side), "role": role, "idle": idle, "interval": intvl, "count": k.count,
        "probes": k.probes, "answered": k.answered,
        "idle_max": round(k.idle_max, 6) if k.idle_n else None, "idle_samples": k.idle_n,
        "interval_max": round(k.intvl_max, 6) if k.intvl_n else None, "interval_samples": k.intvl_n,
        "setting": {"idle": None if idle is None else setting_range(idle, st.hz),
                    "interval": None if intvl is None else setting_range(intvl, st.hz)},
    }


def _role(side: Side, client: Side | None) -> str | None:
    if client is None:
        return None
    return "client" if side is client else "server"


def _flow(f: Flow, t0: float, st: Settings, cache: dict[tuple[int, int, int], dict[str, Any] | None]) -> dict[str, Any]:
    client, how = _roles(f)
    kas = sorted((s for s in (f.a, f.b) if s.ka is not None and s.ka.probes),
                 key=lambda s: -(s.ka.probes if s.ka else 0))
    ka = _ka(kas[0], _role(kas[0], client), st) if kas else None
    timeout = st.lb_timeout_s()
    rsts = []
    for ts, s, gap, answers, ttl, usual in f.rsts or []:
        rsts.append({"at_s": round(ts - t0, 6), "from": endpoint(s), "role": _role(s, client),
                     "after_idle_s": round(gap, 6), "answers_probe": answers, "ttl": ttl,
                     "usual_ttl": usual if usual >= 0 else None,
                     "hint": _rst_hint(s, gap, answers, ttl, usual, timeout, st.lb)})
    bursts: list[dict[str, Any]] = []
    for s in (f.a, f.b):
        for b in s.bursts or []:
            bursts.append({"from": endpoint(s), "role": _role(s, client), "at_s": round(b.start - t0, 6),
                           "segments": b.n, "duration_s": round(b.last - b.start, 6), "ended": b.ended})
    bursts.sort(key=lambda b: b["at_s"])
    row = {
        "id": f.id, "endpoints": [endpoint(f.a), endpoint(f.b)],
        "client": endpoint(client) if client else None, "server": endpoint(client.peer) if client else None,
        "roles_from": how, "first_s": round(f.first - t0, 6), "last_s": round(f.last - t0, 6), "packets": f.packets,
        "keepalive": ka,
        "keepalive_peer": _ka(kas[1], _role(kas[1], client), st) if len(kas) > 1 else None,
        "max_idle_s": round(f.max_idle, 6), "max_idle_at_s": round(f.max_idle_at - t0, 6),
        "rsts": rsts, "rst_count": f.rst_n,
        "retransmissions": f.a.rt_n + f.b.rt_n, "retransmission_bursts": bursts,
        "burst_count": f.a.burst_n + f.b.burst_n, "closed": f.closed or None,
    }
    row["verdict"] = _verdict(row, st, cache)
    return row


def _rst_hint(s: Side, gap: float, answers: bool, ttl: int, usual: int, timeout: float | None,
              lb: str | None) -> str:
    bits = []
    k = s.ka
    if k is not None and k.count is not None:
        bits.append(f"the keepalive gave up after {k.count} unanswered probes (TCP_KEEPCNT, R19)")
    if answers:
        bits.append("it answers a keepalive probe: the peer, or a middlebox in its name, has no state for the flow "
                    "(R23)")
    if timeout is not None and gap >= timeout:
        bits.append(f"after {gap:.1f} s idle, not less than {lb}'s {timeout:g} s idle timeout: likely the LB's reset "
                    "of a flow it forgot")
    if usual >= 0 and ttl != usual:
        bits.append(f"TTL {ttl} where this sender's other packets have {usual}: probably made by a middlebox")
    return "; ".join(bits)


def _predicted(ka: dict[str, Any], st: Settings,
               cache: dict[tuple[int, int, int], dict[str, Any] | None]) -> dict[str, Any] | None:
    """The hop verdict of ``inspect`` for the largest setting consistent with what was observed."""
    idle = ka["setting"]["idle"]
    if idle is None:
        return None
    intvl = ka["setting"]["interval"]
    key = (idle[1], intvl[1] if intvl else idle[1], ka["count"] or 9)
    if key not in cache:
        eff = Effective(True, key[0], key[1], key[2], sources={"idle": "observed in the capture"})
        cache[key] = _verdict_dict(verdict(eff, st))
    return cache[key]


def _verdict(row: dict[str, Any], st: Settings,
             cache: dict[tuple[int, int, int], dict[str, Any] | None]) -> dict[str, Any] | None:
    if not st.lb:
        return None
    timeout = st.lb_timeout_s() or 0.0
    ka = row["keepalive"]
    pred = _predicted(ka, st, cache) if ka else None
    idle = row["max_idle_s"]
    safe: bool | None
    if idle >= timeout:
        safe = False
        reason = (f"seen idle for {idle:.1f} s, not less than {st.lb}'s {timeout:g} s idle timeout: the LB forgot "
                  "this flow")
        after = [r["after_idle_s"] for r in row["rsts"] if r["after_idle_s"] >= timeout]
        if after:
            reason += f", and it was reset after {max(after):.1f} s idle"
    elif pred is not None:
        safe = pred["safe"]
        reason = f"with TCP_KEEPIDLE up to {ka['setting']['idle'][1]} s, as observed: {pred['reason']}"
    elif ka:
        safe = None
        reason = "keepalive probes seen, but not the idle time before one: not judged"
    else:
        safe = None
        reason = (f"no keepalive probe seen, and never idle for as long as {st.lb}'s {timeout:g} s idle timeout "
                  f"(longest {idle:.1f} s); if it goes idle that long without keepalive, the LB forgets it")
    return {"profile": st.lb, "lb_idle_timeout_s": timeout, "safe": safe, "reason": reason,
            "observed_margin_s": round(timeout - idle, 6), "predicted": pred}


def _summary(flows: list[dict[str, Any]], st: Settings, partial: bool, res: Scan) -> dict[str, Any]:
    n = len(flows)
    with_ka = sum(1 for f in flows if f["keepalive"])
    reset = sum(1 for f in flows if f["rst_count"])
    timeout = st.lb_timeout_s()
    out: dict[str, Any] = {"flows": n, "with_keepalive": with_ka, "without_keepalive": n - with_ka, "reset": reset,
                           "retransmission_bursts": sum(f["burst_count"] for f in flows)}
    parts = [f"{n:,} flows", f"{n - with_ka:,} without keepalive"]
    if timeout is not None:
        after = sum(1 for f in flows if any(r["after_idle_s"] >= timeout for r in f["rsts"]))
        out.update(reset_after_idle=after, reset_idle_threshold_s=timeout,
                   unsafe=sum(1 for f in flows if f["verdict"]["safe"] is False),
                   safe=sum(1 for f in flows if f["verdict"]["safe"] is True),
                   not_judged=sum(1 for f in flows if f["verdict"]["safe"] is None))
        parts.append(f"{after:,} reset after {timeout:g} s idle")
        parts.append(f"{out['unsafe']:,} UNSAFE vs {st.lb}")
    else:
        parts.append(f"{reset:,} reset")
    if res.untracked:
        parts.append(f"flow table full at {res.max_flows:,} flows ({res.untracked:,} later packets not analysed)")
    text = ", ".join(parts)
    if partial:
        text += " (partial: the capture is damaged; what was read before the damage)"
    out["text"] = text
    return out

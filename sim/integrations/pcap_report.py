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

import heapq
import json
import math
import socket
from datetime import UTC, datetime
from typing import Any, TextIO

from sim.config.schema import KernelCfg
from sim.integrations.effective import Effective
from sim.integrations.inspect import verdict_dict
from sim.integrations.pcap_flows import DEFAULT_MAX_FLOWS, DUP_S, Flow, KaStats, Scan, Side, scan
from sim.integrations.pcap_read import LINKTYPES, Capture
from sim.integrations.verdict import Settings, verdict
from sim.output import dumps
from sim.report.verdict import probe_lateness_max_s

#: slack (s) for capture timestamps when turning an observed time into the setting behind it
_TOL_S = 0.002
#: ports below this are taken for the server's when the handshake was not captured
_SERVICE_PORT = 32768


class CaptureReport:
    """Builds the report while the flows stream in (:func:`pcap_flows.scan` calls :meth:`on_flow` as each
    flow ends). With ``out`` the JSON is written as it goes, one flow at a time (``--json``: a capture
    of millions of flows is never held as one document); without, the ``keep`` most notable flows
    are kept for the text report. The summary counts every flow either way."""

    def __init__(self, file: str, fmt: str, st: Settings, res: Scan, out: TextIO | None = None,
                 keep: int = 50) -> None:
        self.file, self.fmt, self.st, self.res, self.out, self.keep = file, fmt, st, res, out, keep
        self._cache: dict[tuple[int, int, int], dict[str, Any] | None] = {}
        self._kept: list[tuple[int, int, dict[str, Any]]] = []  # a max-heap by (rank, id) via negation
        self.counts = dict.fromkeys(("flows", "with_keepalive", "reset", "retransmission_bursts", "reset_after_idle",
                                     "unsafe", "safe", "not_judged"), 0)
        self._first = True
        if out is not None:
            head = {"file": file, "kind": fmt, "assumed": self._assumed()}
            out.write(dumps(head)[:-2] + ',\n  "flows": [')

    def _assumed(self) -> dict[str, Any]:
        st = self.st
        return {"lb": st.lb, "lb_idle_timeout_s": st.lb_timeout_s(), "hz": st.hz, "one_way_delay_s": st.one_way_delay_s}

    def on_flow(self, f: Flow) -> None:
        """One finished flow: its row, counted, and written (JSON) or ranked (text)."""
        row = _flow(f, self.res.first_ts or 0.0, self.st, self._cache)
        c = self.counts
        c["flows"] += 1
        c["with_keepalive"] += row["keepalive"] is not None
        c["reset"] += row["rst_count"] > 0
        c["retransmission_bursts"] += row["burst_count"]
        timeout = self.st.lb_timeout_s()
        if timeout is not None:
            c["reset_after_idle"] += any(r["after_idle_s"] >= timeout for r in row["rsts"])
            c[{True: "safe", False: "unsafe", None: "not_judged"}[row["verdict"]["safe"]]] += 1
        if self.out is not None:
            # one line per flow, by the C encoder (indent= would use the pure-Python one, 3x slower); rows
            # hold only str, int, bool, None and finite floats, so sim.output.clean has nothing to do
            self.out.write(("\n    " if self._first else ",\n    ") + json.dumps(row))
            self._first = False
            return
        rank = rank_of(row)
        heapq.heappush(self._kept, (-rank, -row["id"], row))
        if len(self._kept) > self.keep:
            heapq.heappop(self._kept)

    def finish(self, cap: Capture) -> dict[str, Any]:
        """The rest of the report (written after the flows with ``out``); returns the whole report, whose
        ``flows`` are the kept ones (text mode) or empty (JSON, already written)."""
        res = self.res
        t0 = res.first_ts or 0.0
        links = ", ".join(LINKTYPES.get(lt, f"link type {lt}") for lt in dict.fromkeys(cap.linktypes)) or "no interface"
        partial = res.damage is not None
        title = f"{cap.format} capture ({links}), {res.packets:,} packets"
        if res.packets:
            title += f" over {max(0.0, res.last_ts - t0):,.1f} s"
        capture = {
            "format": cap.format, "linktypes": list(dict.fromkeys(cap.linktypes)), "packets": res.packets,
            "tcp_packets": res.tcp, "other_packets": res.other, "short_packets": res.short, "duplicates": res.dups,
            "start": datetime.fromtimestamp(t0, UTC).isoformat() if res.flows and 0 <= t0 < 1e11 else None,
            "duration_s": round(max(0.0, res.last_ts - t0), 6), "max_flows": res.max_flows,
            "untracked_packets": res.untracked, "untracked_syns": res.untracked_syns,
            "damage": None if res.damage is None else {"problem": res.damage.problem, "offset": res.damage.offset},
        }
        tail = {"title": title, "partial": partial, "capture": capture, "summary": self._summary(partial),
                "notes": [], "warnings": self._warnings()}
        if self.out is not None:
            self.out.write("\n  ]," + dumps(tail)[1:] + "\n")
            return {"file": self.file, "kind": self.fmt, "assumed": self._assumed(), "flows": [], **tail}
        kept = [row for _, _, row in sorted(self._kept, key=lambda k: (-k[0], -k[1]))]
        return {"file": self.file, "kind": self.fmt, "assumed": self._assumed(), "flows": kept, **tail}

    def _warnings(self) -> list[str]:
        res = self.res
        warnings = []
        if res.untracked:
            warnings.append(f"the flow table was full at {res.max_flows:,} open flows (--max-flows): {res.untracked:,} "
                            f"packets of further flows ({res.untracked_syns:,} SYNs) were not analysed")
        unknown = sorted(res.linktypes - set(LINKTYPES))
        if unknown:
            warnings.append(f"packets of link type(s) {', '.join(map(str, unknown))} were skipped (read: "
                            f"{', '.join(sorted(set(LINKTYPES.values())))})")
        if res.dups:
            warnings.append(f"{res.dups:,} packets were captured twice within {DUP_S * 1000:g} ms (`tcpdump -i any` on "
                            "a node sees a pod's packet on two interfaces): counted once")
        return warnings

    def _summary(self, partial: bool) -> dict[str, Any]:
        c, st, res = self.counts, self.st, self.res
        n, with_ka = c["flows"], c["with_keepalive"]
        out: dict[str, Any] = {"flows": n, "with_keepalive": with_ka, "without_keepalive": n - with_ka,
                               "reset": c["reset"], "retransmission_bursts": c["retransmission_bursts"]}
        parts = [f"{n:,} flows", f"{n - with_ka:,} without keepalive"]
        timeout = st.lb_timeout_s()
        if timeout is not None:
            out.update(reset_after_idle=c["reset_after_idle"], reset_idle_threshold_s=timeout, unsafe=c["unsafe"],
                       safe=c["safe"], not_judged=c["not_judged"])
            parts.append(f"{c['reset_after_idle']:,} reset after {timeout:g} s idle")
            parts.append(f"{c['unsafe']:,} UNSAFE vs {st.lb}")
        else:
            parts.append(f"{c['reset']:,} reset")
        if res.untracked:
            parts.append(f"flow table full at {res.max_flows:,} open flows ({res.untracked:,} later packets not "
                         "analysed)")
        text = ", ".join(parts)
        if partial:
            text += " (partial: the capture is damaged; what was read before the damage)"
        out["text"] = text
        return out


def inspect_capture(cap: Capture, file: str, st: Settings, max_flows: int = DEFAULT_MAX_FLOWS,
                    out: TextIO | None = None, keep: int = 50) -> dict[str, Any]:
    """Read the open capture in one pass and build its report (see :class:`CaptureReport` for ``out``
    and ``keep``); a damaged capture gives ``partial: true`` and what was read before the damage."""
    res = Scan(max_flows)
    rep = CaptureReport(file, cap.format or "", st, res, out, keep)
    scan(cap.packets(), rep.on_flow, res)
    return rep.finish(cap)


def rank_of(row: dict[str, Any]) -> int:
    """How notable a flow is, for the text report: UNSAFE, reset, retransmitting, keepalive, other."""
    v = row["verdict"]
    if v and v["safe"] is False:
        return 0
    if row["rst_count"]:
        return 1
    if row["burst_count"]:
        return 2
    return 3 if row["keepalive"] else 4


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
        cache[key] = verdict_dict(verdict(eff, st))
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

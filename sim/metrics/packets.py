"""One connection's packet trace as a timeline: what each point of the path saw, with TCP numbers
in bytes. The one source of ``python -m sim trace``'s lines, its ``--pcap`` packets and the
report's "one dropped connection" figure.

The model counts sequence numbers in messages (docs/model.md). Here every message carries
max(its size, 1) bytes (the trace's ``length``), SYN and FIN take one sequence number each, and the
numbers are relative to each side's initial sequence number (the SYN's seq is 0, the first data
byte 1), as tcpdump prints them. A keepalive probe has ``seq = snd_una − 1`` and no payload, as
Linux sends it (kernel-keepalive.md R21).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from sim.facts.names import TRACE_FIELDS

#: causes of an RST that carries an ACK (RST|ACK): a live socket's own reset
_RST_WITH_ACK = ("keepalive timeout", "reset", "abort")
_FLAGS = {"SYN": "S", "SYNACK": "S.", "ACK": ".", "PROBE": ".", "DATA": "P.", "FIN": "F."}
#: the capture points a leg has: its opener and its acceptor
CAPTURE_LANES = ("client", "server")


class Entry(NamedTuple):
    """One trace entry (sim.model.tracing), fields as in TRACE_FIELDS."""

    t_s: float
    lane: str
    kind: str
    note: str
    to: str
    seq: int
    ack: int
    length: int
    cause: str
    fate: str
    at_s: float
    at: str


assert Entry._fields == TRACE_FIELDS


class Line(NamedTuple):
    """One thing seen at one point of the path, at ``t_s``.

    ``event``: sent, received (by an endpoint), dropped or rst (a middlebox stopped it, and with rst
    answered it), or a verdict that is not a packet (expired, error). ``lane`` is where it was seen
    (client, lb, server); ``src`` / ``dst`` the packet's sender and addressee; ``seq`` / ``ack`` in
    bytes relative to the ISNs (``ack`` −1 without the ACK flag); ``end_seq`` = seq + length (+1 for
    SYN and FIN); ``fate`` what became of the packet (delivered, dropped, rst) and ``at`` the
    middlebox that stopped it or that made it."""

    t_s: float
    lane: str
    event: str
    kind: str
    src: str
    dst: str
    flags: str
    seq: int
    end_seq: int
    ack: int
    length: int
    cause: str
    fate: str
    at: str
    note: str


def entries(trace: Iterable[tuple]) -> list[Entry]:
    """Trace tuples (or trace.parquet rows in TRACE_FIELDS order) as entries; a ``(t_s, lane, kind,
    note)`` tuple, the older form, is a verdict."""
    out = []
    for e in trace:
        if len(e) == 4:
            t_s, lane, kind, note = e
            out.append(Entry(float(t_s), lane, kind, note, "", 0, 0, 0, "fault" if "fault" in f"{kind} {note}" else "",
                             "", float(t_s), ""))
        else:
            out.append(Entry(*e))
    return out


class _SeqSpace:
    """Byte offsets of one side's messages: ``off[k]`` is where message ``k`` starts."""

    def __init__(self) -> None:
        self.off = [1]

    def at(self, k: int) -> int:
        off = self.off
        return off[k] if 0 <= k < len(off) else off[-1] + (k - len(off) + 1)

    def took(self, k: int, n: int) -> None:
        """Message (or FIN) ``k`` takes ``n`` bytes of sequence space."""
        if k == len(self.off) - 1:
            self.off.append(self.off[k] + n)

    def next(self) -> int:
        return self.off[-1]


def has_handshake(trace: Iterable[tuple]) -> bool:
    """Does the trace hold the connection's SYN (else a capture synthesizes one)?"""
    return any(e[2] == "SYN" for e in trace)


def _numbers(e: Entry, spaces: dict[str, _SeqSpace]) -> tuple[str, int, int, int]:
    """(flags, seq, end_seq, ack) of a packet entry, in send order (it extends the sender's space)."""
    src = "client" if e.to == "server" else "server"  # whose sequence space it claims
    mine, theirs = spaces[src], spaces[e.to]
    kind = e.kind
    flags = _FLAGS.get(kind, "R." if e.cause in _RST_WITH_ACK else "R")
    ack = -1 if flags in ("S", "R") else theirs.at(e.ack)
    if kind in ("SYN", "SYNACK"):
        return flags, 0, 1, ack
    if e.lane == "lb" and e.cause == "expiry":  # the device's notice carries the flow's next numbers
        seq = mine.next()
        return flags, seq, seq + (1 if kind == "FIN" else 0), -1 if flags == "R" else theirs.next()
    if kind == "PROBE":
        seq = mine.at(e.seq + 1) - 1  # snd_una - 1 (R21)
        return flags, seq, seq, ack
    seq = mine.at(e.seq)
    if kind == "DATA":
        mine.took(e.seq, e.length)
        return flags, seq, seq + e.length, ack
    if kind == "FIN":
        mine.took(e.seq, 1)
        return flags, seq, seq + 1, ack
    return flags, seq, seq, ack


def _seen(e: Entry, nums: tuple[str, int, int, int], t_s: float, lane: str, event: str) -> Line:
    flags, seq, end, ack = nums
    return Line(t_s, lane, event, e.kind, e.lane, e.to, flags, seq, end, ack, e.length, e.cause, e.fate,
                e.at or (e.note if e.lane == "lb" else ""), e.note)


def lines(trace: Iterable[tuple], at: str | None = None) -> list[Line]:
    """What the path saw of the traced connection, in time order. ``at`` None: every point (each
    packet sent, stopped by a middlebox, received); ``client`` or ``server``: a capture on that
    endpoint's interface, each packet once (sent from there, or delivered there), with the
    verdicts that are not packets as notes."""
    if at is not None and at not in CAPTURE_LANES:
        raise ValueError(f"capture point {at!r} (allowed: {', '.join(CAPTURE_LANES)})")
    spaces = {"client": _SeqSpace(), "server": _SeqSpace()}
    out: list[Line] = []
    for e in sorted(entries(trace), key=lambda x: x.t_s):  # stable: ties keep the model's order
        if not e.to:  # a verdict, not a packet
            out.append(Line(e.t_s, e.lane, e.kind, e.kind, e.lane, "", "", 0, 0, -1, 0, e.cause, "", e.at, e.note))
            continue
        nums = _numbers(e, spaces)
        if at is None or e.lane == at:
            out.append(_seen(e, nums, e.t_s, e.lane, "sent"))
        if e.fate == "delivered":
            if at is None or e.to == at:
                out.append(_seen(e, nums, e.at_s, e.to, "received"))
        elif at is None:
            out.append(_seen(e, nums, e.at_s, "lb", e.fate))
    out.sort(key=lambda x: x.t_s)
    return out


def lane_events(seen: Iterable[Line]) -> list[tuple[float, str, str, str]]:
    """The report figure's points, ``(t_s, lane, what, note)``: what each lane saw (``lines`` with
    ``at`` None), a stopped packet as ``drop`` or ``RST`` on the middlebox's lane."""
    out = []
    for ln in seen:
        if ln.event in ("sent", "received"):
            out.append((ln.t_s, ln.lane, ln.kind, ln.event))
        elif ln.dst:  # stopped on the way
            out.append((ln.t_s, "lb", "RST" if ln.event == "rst" else "drop", f"late {ln.kind}"))
        else:
            out.append((ln.t_s, ln.lane, ln.kind, ln.note))
    return out


_CAUSE_WORDS = {"data": "data", "tlp": "TLP (tail loss probe retransmission)", "rto": "RTO retransmission",
                "ack": "ACK", "handshake": "handshake", "syn retry": "SYN retransmission",
                "keepalive": "keepalive probe",
                "keepalive ack": "keepalive ACK (answer to a probe)", "close": "FIN (close)",
                "rst": "RST: no socket for that segment", "abort": "RST: data for a closed socket",
                "keepalive timeout": "RST: keepalive gave up", "reset": "RST", "lb rst": "LB-made RST (late packet)",
                "expiry": "middlebox expiry notice", "fault": "fault"}


def render(seen: Iterable[Line], names: dict[str, str] | None = None) -> str:
    """tcpdump-like text: time, from > to, flags, seq/ack, length, then what caused it and, for a
    packet a middlebox stopped, its fate."""
    nm = {"client": "client", "server": "server", "lb": "LB", **(names or {})}
    out = []
    for ln in seen:
        if not ln.dst:
            who = ln.at or nm.get(ln.lane, ln.lane)
            out.append(f"{ln.t_s:14.6f}  -- {who}: {ln.kind}: {ln.note}" + (" [fault]" if ln.cause == "fault" else ""))
            continue
        src = ln.at if ln.src == "lb" and ln.at else nm[ln.src]
        seq = f"seq {ln.seq}" + (f":{ln.end_seq}" if ln.length else "")
        ack = f", ack {ln.ack}" if ln.ack >= 0 else ""
        text = (f"{ln.t_s:14.6f}  {src} > {nm[ln.dst]}: Flags [{ln.flags}], {seq}{ack}, length {ln.length}"
                f"  {_CAUSE_WORDS.get(ln.cause, ln.cause)}")
        if ln.event == "sent" and ln.fate == "fault":
            text += "  [dropped by a fault]"
        elif ln.event == "sent" and ln.fate not in ("delivered", ""):
            text += f"  [{'answered with RST' if ln.fate == 'rst' else ln.fate} by {ln.at}]"
        elif ln.event not in ("sent", "received"):
            text += f"  [{ln.event} by {ln.at}]"
        out.append(text)
    return "\n".join(out)


def stored_entries(frame) -> list[tuple]:
    """One connection's entries from its trace.parquet rows (a pandas DataFrame); the four columns
    of an older results folder give ``(t_s, lane, kind, note)`` verdicts, shown as they were."""
    cols = [c for c in TRACE_FIELDS if c in frame.columns]
    return list(zip(*(frame[c].tolist() for c in cols), strict=True))

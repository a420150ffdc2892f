"""``ss -nte``/``ss -nteo`` and ``netstat -tnop``/``netstat -nto`` output: one SsConn per socket.

``ss`` prints ``timer:(NAME,TIME,COUNT)`` (kernel-keepalive.md §9, R38); TIME is decoded by
inverting iproute2's ``print_ms_timer``. ``netstat -o`` prints ``NAME (SECONDS/RETRANS/PROBES)``
from /proc/net/tcp (net-tools netstat.c): ``keepalive (7179.89/0/0)``, ``on (0.20/0/0)``,
``off (0.00/0/0)``, ``timewait (59.72/0/0)``, ``probe (...)`` (the zero-window timer). A timer
field that is present but does not parse is an error, never read as "no timer".
"""

from __future__ import annotations

import re

from sim.errors import ConfigError
from sim.integrations.model import Parsed, SsConn

_SS_STATES = ("ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN", "CLOSE-WAIT",
              "LAST-ACK", "LISTEN", "CLOSING", "UNKNOWN")
_SS_LINE = re.compile(r"^(?:(?:tcp6?|mptcp)\s+)?(?P<state>" + "|".join(map(re.escape, _SS_STATES))
                      + r")\s+\d+\s+\d+\s+\S+\s+\S+")
_SS_NOSTATE = re.compile(r"^(?:(?:tcp6?|mptcp)\s+)?\d+\s+\d+\s+\S+:\S+\s+\S+:\S+")  # `ss ... state established`
_SS_HEADER = re.compile(r"^(?:Netid\s+)?(?:State\s+)?Recv-Q\s+Send-Q\s+Local")
_TIMER = re.compile(r"timer:\((?P<kind>on|keepalive|timewait|persist|unknown|off),(?P<time>[^,)]*),(?P<count>\d+)\)")
_TIMER_ANY = re.compile(r"timer:\([^)\s]*\)?")
_TIMER_ALLOWED = ("timer:(NAME,TIME,COUNT) with NAME on|keepalive|timewait|persist|unknown, TIME as print_ms_timer "
                  "prints it (4min48sec, 10min, 12sec, 1.988ms, 1.988sec, 088ms or empty), COUNT an integer")
_MS_TIMER = re.compile(r"^(?:(?P<min>\d+)min)?(?:(?P<sec>\d+)(?P<sep>sec|\.))?(?:(?P<ms>\d{3})(?P<unit>ms|sec))?$")


def parse_ms_timer(text: str) -> tuple[float, float]:
    """Invert iproute2's ``print_ms_timer`` (kernel-keepalive.md §9): (seconds, resolution in s).

    ``4min48sec`` → 288 s (±1 s); ``10min`` → 600 s (seconds dropped above 9 min); ``12sec``;
    ``1.988ms`` (iproute2 < 6.11, *meaning 1.988 s*) and ``1.988sec`` (≥ 6.11) → 1.988 s; ``088ms``
    → 0.088 s; an empty TIME → 0 (the timer is overdue, waiting for its wheel bucket).
    ValueError for anything print_ms_timer cannot print."""
    text = text.strip()
    if text == "":
        return 0.0, 0.001
    m = _MS_TIMER.match(text)
    if not m or not (m["min"] or m["sec"] or m["ms"]):
        raise ValueError(f"{text!r} is not an ss timer value")
    if any(m[g] and m[g].startswith("0") for g in ("min", "sec")):
        raise ValueError(f"{text!r}: ss prints minutes and seconds without leading zeros")
    if m["sep"] == "." and m["ms"] is None:
        raise ValueError(f"{text!r}: a '.' must be followed by three millisecond digits")
    if m["sep"] == "sec" and m["ms"] is not None:
        raise ValueError(f"{text!r} is not an ss timer value")
    if m["ms"] is not None and m["sec"] is None and m["unit"] == "sec":
        raise ValueError(f"{text!r}: milliseconds alone are printed as NNNms")
    if m["min"] and m["ms"] is not None:
        raise ValueError(f"{text!r}: ss drops milliseconds when minutes are printed")
    minutes, secs, ms = int(m["min"] or 0), int(m["sec"] or 0), int(m["ms"] or 0)
    if minutes > 9:
        resolution = 60.0  # print_ms_timer drops the seconds above 9 minutes
    elif minutes or secs > 9:
        resolution = 1.0  # ... and the milliseconds with minutes or above 9 seconds
    else:
        resolution = 0.001
    return minutes * 60 + secs + ms / 1000.0, resolution


def ss_content(text: str) -> list[tuple[int, str]]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if s and not s.startswith(("$", "#")):
            out.append((n, raw))
    return out


def looks_like_ss(text: str) -> bool:
    for _, raw in ss_content(text):
        s = raw.strip()
        if _SS_HEADER.match(s) or _SS_LINE.match(s):
            return True
    return False


def parse_ss(text: str, file: str) -> Parsed:
    """``ss -nte`` / ``-nteo`` output: one SsConn per socket. Continuation lines (``ss`` in a
    terminal, ``-i``) are folded into the socket above them; prompt lines (``$ ss ...``) skipped."""
    parsed = Parsed(kind="ss", file=file, title="ss output")
    for n, raw in ss_content(text):
        s = raw.strip()
        if _SS_HEADER.match(s):
            continue
        m = _SS_LINE.match(s)
        tokens = s.split()
        if tokens and tokens[0] in ("tcp", "tcp6", "mptcp"):
            tokens = tokens[1:]
        if m:
            state, rest = m["state"], tokens[5:]
            local, peer = tokens[3], tokens[4]
        elif _SS_NOSTATE.match(s):
            state, rest = "ESTAB?", tokens[4:]  # a state filter hides the State column
            local, peer = tokens[2], tokens[3]
        elif raw[:1].isspace() and parsed.conns:
            _ss_extras(parsed.conns[-1], s, file, n)
            continue
        else:
            raise ConfigError(f"not an ss socket line: {s[:60]!r}", file=file, line=n,
                              allowed="`ss -nte` / `ss -nteo` lines: State Recv-Q Send-Q Local Peer [timer:(...)]")
        conn = SsConn(line=n, state=state, local=local, peer=peer)
        _ss_extras(conn, " ".join(rest), file, n)
        parsed.conns.append(conn)
    parsed.title = f"ss output: {len(parsed.conns)} socket(s)"
    return parsed


def _ss_extras(conn: SsConn, text: str, file: str, line: int) -> None:
    t = _TIMER.search(text)
    if t is None and "timer:" in text:
        bad = _TIMER_ANY.search(text)
        raise ConfigError(f"unparsable timer {bad.group() if bad else text[text.index('timer:'):][:40]!r}", file=file,
                          line=line, key="timer", allowed=_TIMER_ALLOWED)
    if t:
        conn.timer, conn.timer_text, conn.count = t["kind"], t["time"], int(t["count"])
        try:
            conn.left_s, conn.left_resolution_s = parse_ms_timer(t["time"])
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=line, key="timer",
                              allowed="print_ms_timer forms: 4min48sec, 10min, 12sec, 1.988ms (old: seconds), "
                                      "1.988sec, 088ms, or empty") from None
    for key in ("uid", "ino", "sk"):
        m = re.search(rf"(?:^|\s){key}:(\S+)", text)
        if m:
            conn.extras[key] = m.group(1)




# ----------------------------------------------------------------------------- netstat
_NETSTAT_STATES = {"ESTABLISHED": "ESTAB", "SYN_SENT": "SYN-SENT", "SYN_RECV": "SYN-RECV", "FIN_WAIT1": "FIN-WAIT-1",
                   "FIN_WAIT2": "FIN-WAIT-2", "TIME_WAIT": "TIME-WAIT", "CLOSE": "UNCONN", "CLOSE_WAIT": "CLOSE-WAIT",
                   "LAST_ACK": "LAST-ACK", "LISTEN": "LISTEN", "CLOSING": "CLOSING", "UNKNOWN": "UNKNOWN"}
_NETSTAT_LINE = re.compile(r"^(?P<proto>tcp6?)\s+\d+\s+\d+\s+(?P<local>\S+)\s+(?P<peer>\S+)\s+"
                           r"(?P<state>" + "|".join(sorted(_NETSTAT_STATES, key=len, reverse=True)) + r")(?P<rest>.*)$")
#: netstat glues the timer to an 11-character state: "ESTABLISHEDkeepalive (6176.47/0/0)"
_NETSTAT_TIMER = re.compile(r"(?P<kind>keepalive|on|off|timewait|probe|unkn-\d+) \((?P<secs>\d+\.\d{2})/"
                            r"(?P<retr>\d+)/(?P<probes>\d+)\)")
_NETSTAT_KIND = {"keepalive": "keepalive", "on": "on", "off": None, "timewait": "timewait", "probe": "persist"}


def looks_like_netstat(text: str) -> bool:
    """Any ``netstat -t`` socket line (tcp/tcp6 with a netstat state name)."""
    return any(_NETSTAT_LINE.match(raw.strip()) for raw in text.splitlines())


def parse_netstat(text: str, file: str) -> Parsed:
    """``netstat -tnop`` / ``-nto`` / ``--timers`` output. Without ``-o`` there is no timer column, which
    says nothing about keepalive: that is an error, not "no timer"."""
    parsed = Parsed(kind="netstat", file=file, title="netstat output")
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        m = _NETSTAT_LINE.match(s)
        if not m:
            continue  # headers ("Active Internet connections", "Proto Recv-Q ...") and udp/unix lines
        rest = m["rest"]
        t = _NETSTAT_TIMER.search(rest)
        conn = SsConn(line=n, state=_NETSTAT_STATES[m["state"]], local=m["local"], peer=m["peer"])
        if t is None:
            if "(" in rest:
                raise ConfigError(f"unparsable timer {rest.strip()[:40]!r}", file=file, line=n, key="timer",
                                  allowed="netstat -o timers: keepalive (7179.89/0/0), on (0.20/0/0), off (0.00/0/0), "
                                          "timewait (59.72/0/0), probe (...)")
            raise ConfigError("netstat output without the timer column cannot show keepalive", file=file, line=n,
                              allowed="`netstat -tnop` (-o prints the timers) or `ss -nteo`")
        kind = _NETSTAT_KIND.get(t["kind"], "unknown")
        conn.timer = kind
        conn.timer_text = t.group()
        if kind is not None:
            conn.left_s, conn.left_resolution_s = float(t["secs"]), 0.01
            conn.count = int(t["retr"]) if kind == "on" else int(t["probes"])
        pid = re.search(r"\s(\d+/\S+)", rest)
        if pid:
            conn.extras["pid/program"] = pid.group(1)
        parsed.conns.append(conn)
    parsed.title = f"netstat output: {len(parsed.conns)} socket(s)"
    return parsed

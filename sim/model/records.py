"""Per-connection records and the outcome of each side (DESIGN §3)."""

from __future__ import annotations

import math

from sim.facts.names import ConnRecord
from sim.model.close import close_columns
from sim.model.kernel import TcpSocket
from sim.model.network import Path
from sim.model.segment import DATA, ECONNREFUSED, PROBE, SYN_SENT

#: kernel errors of a connect (handshake.py): the cause is the failure reason and the outcome
CONNECT_CAUSES = ("connect_timeout", "connect_refused")


def failure_reason(cause: str, seg) -> str:
    """The failure reason of a request whose connection died under it (a kernel error)."""
    if cause == "keepalive" or cause == "retrans":
        return "timeout"
    if cause in CONNECT_CAUSES:
        return cause
    if seg is not None and seg.origin == "host" and seg.provoked_by == DATA:
        return "race_reset"
    return "reset"


def error_outcome(cause: str, seg) -> str:
    """How a side learnt its connection was dead, from the kernel's error."""
    if cause == "keepalive":
        return "timeout_keepalive"
    if cause == "retrans":
        return "timeout_retrans"
    if cause in CONNECT_CAUSES:
        return cause
    if seg.origin == "host":
        # an RST the peer's kernel sent because our data reached a socket its application had closed
        return "race_reset" if seg.provoked_by == DATA else "reset_by_peer"
    if seg.provoked_by == -1:
        return "reset_on_expiry"
    if seg.provoked_by == PROBE:
        return "reset_on_probe"
    return "reset_on_send"


class Conn:
    """One TCP connection (one leg): its path, both sockets and its request counters."""

    __slots__ = (
        "conn_id", "leg", "path", "cs", "ss", "requests", "failed", "hang_s", "in_flight",
        "out_c", "out_s", "close_reason", "opened_s", "fail_reasons", "sent_s", "goaways", "status_503",
        "hang_open_s",
    )

    def __init__(self, conn_id: int, leg: str, path: Path, opened_s: float, cs: TcpSocket, ss: TcpSocket) -> None:
        self.conn_id = conn_id
        self.leg = leg
        self.path = path
        #: the client (connecting) and server (accepting) sockets
        self.cs = cs
        self.ss = ss
        self.requests = 0
        self.failed = 0
        self.hang_s = 0.0
        self.in_flight = 0
        #: each side's outcome (client, server) when an error or an expiry notice decided it
        self.out_c: str | None = None
        self.out_s: str | None = None
        self.close_reason: str | None = None
        self.opened_s = opened_s
        #: failed requests by reason (FAILURE_REASONS), made at the first failure
        self.fail_reasons: dict[str, int] | None = None
        #: when the request in flight was sent (valid while ``in_flight``)
        self.sent_s = 0.0
        #: GOAWAYs received, and requests Envoy answered with 503 (both counted on the client's row)
        self.goaways = 0
        self.status_503 = 0
        #: the age at the end of the run of a request that hung (failure reason ``hung``)
        self.hang_open_s = 0.0

    def start_request(self, now_s: float) -> None:
        """A request goes out on this connection."""
        self.requests += 1
        self.in_flight = 1
        self.sent_s = now_s

    def count_failure(self, reason: str) -> None:
        """A request failed for ``reason`` (one of FAILURE_REASONS)."""
        self.failed += 1
        self.in_flight = 0
        if self.fail_reasons is None:
            self.fail_reasons = {}
        self.fail_reasons[reason] = self.fail_reasons.get(reason, 0) + 1

    def lost_at_end(self) -> bool:
        """A middlebox on this leg forgot the flow and it was not re-created (after ``path.finish``)."""
        return any(f.first_drop_s is not None and f.alive_at_end is False for f in self.path.flows)

    def hang_at_end(self, end_s: float) -> None:
        """The request in flight will never be answered (reason ``hung``): failed, yet still in flight."""
        self.count_failure("hung")
        self.in_flight = 1
        self.hang_open_s = end_s - self.sent_s

    def record_error(self, sock: TcpSocket, cause: str, seg) -> None:
        client = sock is self.cs
        if self.path.trace is not None:
            self.path.trace.note(sock.closed_at_s if sock.closed_at_s is not None else 0.0,
                                 "client" if client else "server", "error",
                                 f"{sock.error} ({error_outcome(cause, seg)})")
        if client:
            if self.out_c is None:
                self.out_c = error_outcome(cause, seg)
        elif self.out_s is None:
            self.out_s = error_outcome(cause, seg)

    def record_close(self, sock: TcpSocket, reason: str) -> None:
        """An application closed it: ``idle`` (an idle timeout), ``expiry`` (a middlebox FIN),
        ``goaway`` (a gRPC server refused it), or another reason (an ordinary close)."""
        if reason == "expiry":
            if sock is self.cs:
                self.out_c = "reset_on_expiry"
            else:
                self.out_s = "reset_on_expiry"
        elif reason == "goaway":
            self.out_c = self.out_s = "goaway"
        elif self.close_reason is None:
            self.close_reason = reason

    def row(self, end_s: float) -> ConnRecord:
        """The finished record, after ``path.finish``."""
        drop_s = None
        silent = False
        healed = True
        min_slack = math.inf
        at_risk = 0
        for mb, flow in zip(self.path.mbs, self.path.flows, strict=False):
            min_slack = min(min_slack, flow.min_slack_s)
            at_risk += flow.at_risk_gaps
            if flow.first_drop_s is not None:
                if drop_s is None or flow.first_drop_s < drop_s:
                    drop_s = flow.first_drop_s
                if flow.drop_both_open and mb.spec.on_expiry == "silent":
                    silent = True
                if not flow.alive_at_end:
                    healed = False
        outs = []
        detects = []
        zombies = []
        for out, sock in ((self.out_c, self.cs), (self.out_s, self.ss)):
            closed = sock.closed_at_s if sock is not None else None
            if out is None:
                if closed is not None:
                    idle = self.close_reason == "idle"
                    if drop_s is not None and closed > drop_s:
                        out = "closed_after_drop"
                    else:
                        out = "closed_idle" if idle else "ok"
                elif drop_s is not None and not healed:
                    out = "zombie"
                else:
                    out = "ok"
            outs.append(out)
            detected = math.nan
            zombie = 0.0
            if drop_s is not None and out not in ("ok", "closed_idle"):
                until = closed if closed is not None else end_s
                zombie = max(0.0, until - drop_s)
                if sock is not None and sock.error is not None and closed is not None and closed >= drop_s:
                    detected = closed - drop_s
            detects.append(detected)
            zombies.append(zombie)
        probes = (self.cs.probes_sent if self.cs else 0) + (self.ss.probes_sent if self.ss else 0)
        closed_at = [s.closed_at_s for s in (self.cs, self.ss) if s is not None and s.closed_at_s is not None]
        reasons = self.fail_reasons or {}
        cs, ss = self.cs, self.ss
        # every field by its keyword: compiled, the record is then built by a direct call (a ** dict
        # would go through Python's generic call, a third of a storm's time to records)
        c_outcome, c_s, c_syns = connect_columns(cs)
        c_state, c_fw2, c_tw, c_fins, c_rtx, c_died = close_columns(cs, end_s)
        s_state, s_fw2, s_tw, s_fins, s_rtx, s_died = close_columns(ss, end_s)
        return ConnRecord(
            conn_id=self.conn_id, leg=self.leg, outcome=outs[0], client_outcome=outs[0], server_outcome=outs[1],
            silent_drop=silent, drop_at_s=math.nan if drop_s is None else drop_s,
            client_detect_s=detects[0], server_detect_s=detects[1], requests=self.requests,
            failed_requests=self.failed, hang_s=self.hang_s, requests_in_flight_at_end=self.in_flight,
            keepalive_probes=probes, client_zombie_s=zombies[0], server_zombie_s=zombies[1],
            opened_at_s=self.opened_s, closed_at_s=max(closed_at) if len(closed_at) == 2 else math.nan,
            min_slack_s=min_slack, at_risk_gaps=at_risk,
            client_closed_at_s=math.nan if cs is None or cs.closed_at_s is None else cs.closed_at_s,
            server_closed_at_s=math.nan if ss is None or ss.closed_at_s is None else ss.closed_at_s,
            resets=reasons.get("reset", 0), timeouts=reasons.get("timeout", 0), hung=reasons.get("hung", 0),
            race_resets=reasons.get("race_reset", 0), route_timeouts=reasons.get("route_timeout", 0),
            stream_idle_timeouts=reasons.get("stream_idle_timeout", 0),
            client_timeouts=reasons.get("client_timeout", 0), goaway_failures=reasons.get("goaway", 0),
            goaways=self.goaways, envoy_503s=self.status_503, hang_s_open=self.hang_open_s,
            connect_outcome=c_outcome, connect_s=c_s, syns_sent=c_syns,
            connect_timeouts=reasons.get("connect_timeout", 0), connect_refusals=reasons.get("connect_refused", 0),
            fins_sent=c_fins + s_fins, fin_retransmits=c_rtx + s_rtx, orphan_died=c_died or s_died,
            client_close_state=c_state, server_close_state=s_state, fin_wait2_s=c_fw2 + s_fw2, time_wait_s=c_tw + s_tw,
        )


def connect_columns(cs: TcpSocket) -> tuple[str, float, int]:
    """(connect_outcome, connect_s, syns_sent) of the connecting socket (kernel-lifecycle.md)."""
    if cs.estab_s >= 0:
        outcome, until = "ok", cs.estab_s
    elif cs.state == SYN_SENT:
        outcome, until = "pending", math.nan
    else:  # ECONNREFUSED, ETIMEDOUT, or the application gave up waiting (Envoy's connect_timeout)
        outcome = "connect_refused" if cs.error == ECONNREFUSED else "connect_timeout"
        until = cs.closed_at_s if cs.closed_at_s is not None else math.nan
    return outcome, until - cs.syn_s, cs.syns

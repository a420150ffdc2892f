"""Names the model writes and the reports read: outcomes, failure reasons, record columns."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

#: Outcome values (DESIGN §3), plus what this model adds: ``reset_by_peer`` (an RST built by the
#: other host, e.g. a host whose socket is gone), ``closed_after_drop`` (this side closed the
#: connection itself, but only after the middlebox had already forgotten it), ``race_reset`` and
#: ``goaway``; and a connection that was never established: ``connect_timeout`` (ETIMEDOUT in
#: SYN_SENT, or the application's own connect timeout) and ``connect_refused`` (an RST answered the SYN).
OUTCOMES: Final = (
    "ok", "closed_idle", "reset_on_send", "reset_on_probe", "timeout_keepalive", "timeout_retrans",
    "reset_on_expiry", "zombie", "reset_by_peer", "closed_after_drop", "race_reset", "goaway",
    "connect_timeout", "connect_refused",
)

#: ``connect_outcome`` values (kernel-lifecycle.md): established, ETIMEDOUT (or the application's
#: connect timeout, Envoy's ``connect_timeout``), ECONNREFUSED, or still in SYN_SENT at the end.
CONNECT_OUTCOMES: Final = ("ok", "connect_timeout", "connect_refused", "pending")

#: ``client_close_state`` / ``server_close_state`` values: ``established`` (still open at the end, or
#: still connecting), the kernel's close states, and ``closing`` (both sides closed at once: our FIN
#: not acknowledged yet when the peer's arrived).
CLOSE_STATES: Final = ("established", "fin_wait1", "fin_wait2", "time_wait", "close_wait", "last_ack", "closed",
                       "closing")

#: Why a request failed (DESIGN §6): each failed request has exactly one reason.
#: ``reset``: the connection was reset (an RST) or closed by a middlebox under the request;
#: ``timeout``: retransmission or keepalive ETIMEDOUT; ``hung``: still waiting at the end of the run
#: on a connection a middlebox had silently forgotten; ``race_reset``: the keep-alive race (the peer
#: closed the idle connection as the request went out); ``route_timeout`` (Envoy 504),
#: ``stream_idle_timeout`` (Envoy 408), ``client_timeout`` (the client's own request timeout) and
#: ``goaway`` (a gRPC server's GOAWAY); ``connect_timeout`` and ``connect_refused``: the connection the
#: request waited for was never established (the client's own connect, or Envoy's upstream one: 503).
FAILURE_REASONS: Final = ("reset", "timeout", "hung", "race_reset", "route_timeout", "stream_idle_timeout",
                          "client_timeout", "goaway", "connect_timeout", "connect_refused")


def reason_column(reason: str) -> str:
    """The per-connection (and summary) count column of a failure reason: ``resets``, ``hung``,
    ``goaway_failures`` (``goaways`` counts the GOAWAY frames received) ..."""
    special = {"hung": "hung", "goaway": "goaway_failures", "connect_refused": "connect_refusals"}
    return special.get(reason, f"{reason}s")


#: Per-reason count columns: failed requests by reason; they sum to ``failed_requests``.
REASON_COLUMNS: Final = tuple(reason_column(r) for r in FAILURE_REASONS)

@dataclass
class ConnRecord:
    """One connection (one leg) as the model records it: the documented per-connection columns
    (docs/outputs.md), in order. Times in seconds of simulated time; NaN where nothing happened."""

    conn_id: int
    leg: str  # downstream | lb_backend | upstream
    outcome: str  # the client side's, as client_outcome
    client_outcome: str
    server_outcome: str
    silent_drop: bool
    drop_at_s: float
    client_detect_s: float
    server_detect_s: float
    requests: int
    failed_requests: int
    hang_s: float
    requests_in_flight_at_end: int
    keepalive_probes: int
    client_zombie_s: float
    server_zombie_s: float
    opened_at_s: float
    closed_at_s: float
    min_slack_s: float
    at_risk_gaps: int
    client_closed_at_s: float
    server_closed_at_s: float
    #: failed requests by reason (REASON_COLUMNS, in FAILURE_REASONS order): they sum to failed_requests
    resets: int
    timeouts: int
    hung: int
    race_resets: int
    route_timeouts: int
    stream_idle_timeouts: int
    client_timeouts: int
    goaway_failures: int
    goaways: int
    envoy_503s: int
    hang_s_open: float
    #: the handshake (kernel-lifecycle.md R41–R45): CONNECT_OUTCOMES, seconds from the first SYN to
    #: established or to the error (NaN while pending), SYNs the connecting side sent
    connect_outcome: str
    connect_s: float
    syns_sent: int
    #: failed requests with reason connect_timeout / connect_refused (after the others: columns are
    #: only ever added)
    connect_timeouts: int
    connect_refusals: int
    #: the close (kernel-lifecycle.md R46–R52), both sides together: FINs sent (retransmissions
    #: included), FIN retransmissions, an orphan gave up (R47); the close state each side reached
    #: (CLOSE_STATES); seconds spent in FIN_WAIT2 and in TIME_WAIT, up to the end of the run
    fins_sent: int
    fin_retransmits: int
    orphan_died: bool
    client_close_state: str
    server_close_state: str
    fin_wait2_s: float
    time_wait_s: float


#: The columns a connection's own record holds (ConnRecord's fields), in order.
RECORD_COLUMNS: Final = tuple(f.name for f in fields(ConnRecord))
#: The traffic class of the slot a connection served (its name; ``default`` for a single traffic
#: mapping): the world fills it in from the slot, as a Python keyword cannot be a record field.
CLASS_COLUMN: Final = "class"
#: The per-connection record columns (docs/outputs.md), in order: ConnRecord's fields, then ``class``.
COLUMNS: Final = RECORD_COLUMNS + (CLASS_COLUMN,)


#: Connection ids are ``slot * CONN_ID_STRIDE + n`` for the n-th connection a slot (and Envoy on its
#: behalf) opened, so ids do not depend on which other slots ran in the same process.
CONN_ID_STRIDE: Final = 1_000_000

#: IPv4 (20) + TCP (20) + timestamps option (12): a probe, an ACK, or a data segment's headers.
SEGMENT_HEADER_BYTES: Final = 52
#: bytes an HTTP/2 PING, PING ACK or GOAWAY frame carries on top of those: a 9-byte frame header and
#: an 8-byte payload (RFC 9113 §6.7; a GOAWAY without debug data is 8 bytes too, §6.8)
H2_CONTROL_FRAME_BYTES: Final = 17

#: The fields of one packet-trace entry (``Records.trace``, trace.parquet), in tuple order:
#: ``t_s`` when it was sent (or the verdict's time); ``lane`` its sender, client (the leg's opener),
#: server (its acceptor) or lb (a middlebox); ``kind`` SYN, SYNACK, ACK, DATA, PROBE, FIN, RST, or
#: ``expired`` / ``error`` for a verdict that is not a packet; ``note`` the middlebox that made it, or
#: the verdict's text; ``to`` client or server; ``seq`` / ``ack`` in messages (docs/model.md);
#: ``length`` payload bytes (a message carries max(its size, 1)); ``cause`` data, tlp, rto, ack,
#: handshake, syn retry, keepalive, keepalive ack, close, rst, abort, keepalive timeout, reset, lb rst, expiry,
#: fault; ``fate`` delivered, dropped or rst; ``at_s`` when it arrived or was stopped; ``at`` the
#: middlebox that stopped it (or noted the verdict).
TRACE_FIELDS: Final = ("t_s", "lane", "kind", "note", "to", "seq", "ack", "length", "cause", "fate", "at_s", "at")

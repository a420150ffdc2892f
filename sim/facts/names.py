"""Names the model writes and the reports read: outcomes, failure reasons, record columns."""

from __future__ import annotations

from typing import Final

#: Outcome values (DESIGN §3), plus what this model adds: ``reset_by_peer`` (an RST built by the
#: other host, e.g. a host whose socket is gone), ``closed_after_drop`` (this side closed the
#: connection itself, but only after the middlebox had already forgotten it), ``race_reset`` and
#: ``goaway``.
OUTCOMES: Final = (
    "ok", "closed_idle", "reset_on_send", "reset_on_probe", "timeout_keepalive", "timeout_retrans",
    "reset_on_expiry", "zombie", "reset_by_peer", "closed_after_drop", "race_reset", "goaway",
)

#: Why a request failed (DESIGN §6): each failed request has exactly one reason.
#: ``reset``: the connection was reset (an RST) or closed by a middlebox under the request;
#: ``timeout``: retransmission or keepalive ETIMEDOUT; ``hung``: still waiting at the end of the run
#: on a connection a middlebox had silently forgotten; ``race_reset``: the keep-alive race (the peer
#: closed the idle connection as the request went out); ``route_timeout`` (Envoy 504),
#: ``stream_idle_timeout`` (Envoy 408), ``client_timeout`` (the client's own request timeout) and
#: ``goaway`` (a gRPC server's GOAWAY).
FAILURE_REASONS: Final = ("reset", "timeout", "hung", "race_reset", "route_timeout", "stream_idle_timeout",
                          "client_timeout", "goaway")


def reason_column(reason: str) -> str:
    """The per-connection (and summary) count column of a failure reason: ``resets``, ``hung``,
    ``goaway_failures`` (``goaways`` counts the GOAWAY frames received) ..."""
    return {"hung": "hung", "goaway": "goaway_failures"}.get(reason, f"{reason}s")


#: Per-reason count columns: failed requests by reason; they sum to ``failed_requests``.
REASON_COLUMNS: Final = tuple(reason_column(r) for r in FAILURE_REASONS)

#: The per-connection record columns (docs/outputs.md), in order.
COLUMNS: Final = (
    "conn_id", "leg", "outcome", "client_outcome", "server_outcome", "silent_drop", "drop_at_s",
    "client_detect_s", "server_detect_s", "requests", "failed_requests", "hang_s",
    "requests_in_flight_at_end", "keepalive_probes", "client_zombie_s", "server_zombie_s",
    "opened_at_s", "closed_at_s", "min_slack_s", "at_risk_gaps", "client_closed_at_s", "server_closed_at_s",
    *REASON_COLUMNS, "goaways", "envoy_503s", "hang_s_open",
)

#: Connection ids are ``slot * CONN_ID_STRIDE + n`` for the n-th connection a slot (and Envoy on its
#: behalf) opened, so ids do not depend on which other slots ran in the same process.
CONN_ID_STRIDE: Final = 1_000_000

#: IPv4 (20) + TCP (20) + timestamps option (12): a probe, an ACK, or a data segment's headers.
SEGMENT_HEADER_BYTES: Final = 52

"""Application messages: one data segment each (docs/model.md, "Connections are modelled at the
level of requests and responses")."""

from __future__ import annotations

from typing import Final

#: Message kinds that are not requests or responses (``Msg.status``).
PING: Final = -1
PING_ACK: Final = -2
GOAWAY: Final = -3


class Msg:
    """A request (status 0), its response (200, or an error status with ``reason``), or an HTTP/2
    control frame (PING, PING_ACK, GOAWAY).

    ``size_bytes``: its application bytes for the middleboxes' byte counts, or -1 for the run's own
    (``traffic.request_bytes`` from the client, ``response_bytes`` from the server); ``service_s``:
    for a request, the server's service time, or -1 for a draw from ``traffic.service_time``. A
    traffic process (``conn.request``) sets them; the built-in traffic leaves them at -1.
    """

    __slots__ = ("req_id", "sent_s", "status", "reason", "size_bytes", "service_s")

    def __init__(self, req_id: int, sent_s: float, status: int = 0, reason: str = "", size_bytes: int = -1,
                 service_s: float = -1.0) -> None:
        self.req_id = req_id
        self.sent_s = sent_s
        self.status = status
        self.reason = reason
        self.size_bytes = size_bytes
        self.service_s = service_s

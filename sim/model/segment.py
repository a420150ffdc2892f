"""TCP segments and socket states (kernel-keepalive.md §13), as the model counts them.

Sequence numbers count application messages, not bytes (docs/model.md); every RST the model builds
is exact (seq == rcv_nxt).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket

# Constants are ``Final`` so that the compiled core inlines them (a module global is a dict lookup).
# Segment kinds.
SYN: Final = 0
SYNACK: Final = 1
ACK: Final = 2
DATA: Final = 3
PROBE: Final = 4
FIN: Final = 5
RST: Final = 6
KIND_NAMES: Final = ("SYN", "SYNACK", "ACK", "DATA", "PROBE", "FIN", "RST")

# Socket states.
SYN_SENT: Final = 0
SYN_RECV: Final = 1
ESTABLISHED: Final = 2
FIN_WAIT: Final = 3
CLOSED: Final = 4
LISTEN: Final = 5

# Errors the application can see (errno names) and how the socket learnt of them.
ECONNRESET: Final = "ECONNRESET"
ETIMEDOUT: Final = "ETIMEDOUT"
ECONNREFUSED: Final = "ECONNREFUSED"


class Seg:
    """One TCP segment. ``seq``/``ack`` count messages, not bytes."""

    __slots__ = ("kind", "seq", "ack", "payload", "probe_ack", "origin", "provoked_by", "dst", "src")

    #: the socket it is on its way to, set when it is queued (``Scheduler.deliver_at``)
    dst: TcpSocket

    def __init__(self, kind: int, seq: int = 0, ack: int = 0, payload: Any = None) -> None:
        self.kind = kind
        self.seq = seq
        self.ack = ack
        self.payload = payload
        self.probe_ack = False
        #: who built the segment: "host" or a middlebox name (LB-generated RSTs / keepalives).
        self.origin = "host"
        #: for an RST a middlebox sent back: the kind of segment that provoked it.
        self.provoked_by = -1
        #: for a keepalive probe: the socket that sent it (told when the probe goes unanswered)
        self.src: TcpSocket | None = None

"""HTTP/2 PINGs on one connection: the client's gRPC pings (``client.ping_interval``) and Envoy's
connection keepalive (``http2_keepalive``, docs/model.md "Envoy upstream pools").

Without a timeout a PING goes out every ``interval_s`` from the start, answered or not (the
client's pings). With one, Envoy's codec (source/common/http/http2/codec_impl.cc) is followed:
``sendKeepalive`` sends a PING and arms the timeout; ``onKeepaliveResponse`` (the PING ACK) disarms
it and sends the next PING ``interval_s`` later; ``onKeepaliveResponseTimeout`` closes the
connection. Envoy adds a random jitter of up to ``interval_jitter`` (15 % by default) to each
interval; the model does not (it would need a random stream per connection), so its PINGs are as
early as Envoy's can be.
"""

from __future__ import annotations

from typing import Any

from sim.model.clock import Scheduler
from sim.model.kernel import TcpSocket
from sim.model.messages import PING, Msg
from sim.model.segment import ESTABLISHED


class Pinger:
    """PINGs on ``sock`` every ``interval_s``; with ``timeout_s`` > 0, ``owner.ping_timed_out()``
    runs when a PING ACK has not come ``timeout_s`` after its PING."""

    __slots__ = ("sched", "sock", "interval_s", "timeout_s", "owner", "awaiting", "seq")

    def __init__(self, sched: Scheduler, sock: TcpSocket, interval_s: float, timeout_s: float, owner: Any) -> None:
        self.sched = sched
        self.sock = sock
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.owner = owner
        #: a PING is waiting for its ACK (only with a timeout)
        self.awaiting = False
        #: PINGs sent so far: a timeout is for the PING it was armed for
        self.seq = 0

    def start(self, now_s: float) -> None:
        """The first PING goes out ``interval_s`` from now."""
        self.sched.call_at(now_s + self.interval_s, self._tick)

    def _tick(self, _arg: Any = None) -> None:
        sock = self.sock
        if not sock.is_open():
            return
        now = self.sched.now_s
        if sock.state == ESTABLISHED:
            sock.send(Msg(0, now, PING))
            if self.timeout_s > 0:  # the next one after the ACK
                self.awaiting = True
                self.seq += 1
                self.sched.call_at(now + self.timeout_s, self._expired, self.seq)
                return
        self.sched.call_at(now + self.interval_s, self._tick)

    def acked(self) -> None:
        """A PING ACK came: the timeout is off, the next PING goes out ``interval_s`` from now."""
        if self.awaiting:
            self.awaiting = False
            self.sched.call_at(self.sched.now_s + self.interval_s, self._tick)

    def _expired(self, seq: int) -> None:
        if self.awaiting and seq == self.seq and self.sock.is_open():
            self.awaiting = False
            self.owner.ping_timed_out()

"""A client slot driven by a user-written SimPy process (``traffic.process``, docs/config.md).

The built-in slot sends its next request one gap after each answer and replaces a dead connection
at once. This one sends a request when its process calls ``conn.request()`` and answers that call
with a reply; nothing opens a connection by itself: a connection that dies stays closed until the
next request opens another. Everything else (sockets, timers, records) is the built-in slot's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.model.app import ClientSlot, Sampler, Server
from sim.model.messages import Msg
from sim.model.storm import hold

if TYPE_CHECKING:  # for types only: scenario imports this module
    from sim.model.scenario import World

#: a process slot draws no gaps
_NO_GAPS = Sampler("fixed", 0.0, 0.0, None)


class ProcessSlot(ClientSlot):
    """One client slot whose requests a traffic process sends (through ``user_process.SlotConn``)."""

    __slots__ = ("procs", "reply", "called_s", "size_bytes", "service_s")

    def __init__(self, world: World, index: int, server: Server, kind: Any, procs: Any) -> None:
        super().__init__(world, index, _NO_GAPS, server, kind)
        self.pending = False  # the process sends the first request, when it wants to
        #: the run's traffic processes (user_process.UserProcesses)
        self.procs = procs
        #: the SimPy event the process waits on for the outstanding request's reply, or None
        self.reply: Any = None
        #: when the process asked for the request (seconds): its reply's latency counts from there
        self.called_s = 0.0
        #: the request's application bytes and service time (-1: the run's, as Msg says)
        self.size_bytes = -1
        self.service_s = -1.0

    def request(self, size_bytes: int, service_s: float, reply: Any) -> None:
        """``conn.request()``: one request on the current connection, opening one first if the
        slot has none; ``reply`` is triggered with its outcome."""
        self.reply = reply
        self.called_s = self.world.now()
        self.size_bytes = size_bytes
        self.service_s = service_s
        self._request_due()

    def close_conn(self) -> None:
        """``conn.close()``: close the client's socket. A request still waiting fails as the
        client giving up on it (``client_timeout``)."""
        conn = self.conn
        if conn is None:
            return
        if self.outstanding is not None:
            self._fail_outstanding("client_timeout")
        elif self.pending:  # asked for, never sent: the connection was still opening
            self.pending = False
            self._answered("client_timeout")
        self._close_and("closed", reopen=False)

    def _new_request(self, req_id: int, now_s: float) -> Msg:
        return Msg(req_id, now_s, 0, "", self.size_bytes, self.service_s)

    def _answered(self, reason: str) -> None:
        reply = self.reply
        if reply is not None:
            self.reply = None
            self.procs.answer(reply, reason, self.world.now() - self.called_s)

    def _replace(self) -> None:
        if self.world.backoff:  # the next request waits out the delay (ClientSlot._backoff_over)
            hold(self)
        elif self.pending:  # a request the process asked for still waits for a connection
            self.open()

    def _reopens(self) -> bool:
        return self.pending  # only a request the process asked for opens a connection

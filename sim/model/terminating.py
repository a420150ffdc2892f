"""Terminating load balancers (NLB TLS listener, ALB, generic proxies): two TCP legs per client
connection, the LB's own sockets in the middle, and one idle timer shared by both legs.

The LB's flow-table view is a ``Middlebox`` placed on both legs next to the LB, holding one flow
shared by the two legs, so "any packet on either leg refreshes it", late packets and silent
expiry work exactly as for pass-through devices. Keepalive probes stop here: the LB's kernel
answers them (R22) and they are never forwarded (lb-catalog.md §2.14, HAProxy).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.model.acks import settle
from sim.model.app import ClientSlot
from sim.model.kernel import TcpSocket
from sim.model.messages import Msg
from sim.model.records import Conn
from sim.model.segment import ESTABLISHED, PROBE, Seg
from sim.spec import MiddleboxSpec

if TYPE_CHECKING:  # for types only: scenario imports this module
    from sim.model.scenario import World


class TermProxyConn:
    """The LB's handling of one client connection: front leg (client side) and back leg."""

    __slots__ = ("world", "slot", "front", "back", "flow", "queue", "generating", "spec")

    def __init__(self, world: World, slot: ClientSlot, front_conn: Conn, spec: MiddleboxSpec) -> None:
        self.world = world
        self.slot = slot
        self.front = front_conn
        self.back: Any = None  # Conn of the back leg
        self.spec = spec  # MiddleboxSpec of the LB
        self.flow: Any = None  # Flow shared by both legs
        self.queue: list[Msg] = []
        self.generating = False

    # -- the view's hooks
    def saw_keepalive(self) -> None:
        """A keepalive from either side reached the LB: NLB TLS starts its own, every 20 s, on both
        legs (it cannot be turned off)."""
        if self.spec.keepalive_every_s > 0 and not self.generating:
            self.generating = True
            self._generate()

    def _generate(self, _arg=None) -> None:
        flow = self.flow
        if flow is None or not flow.alive:
            self.generating = False
            return
        for conn in (self.front, self.back):
            if conn is not None:
                sock = conn.ss if conn is self.front else conn.cs
                if sock.state == ESTABLISHED:
                    if sock.pending_acks:  # snd_una as the reference engine has it (the trace shows the seq)
                        settle(sock)
                    probe = Seg(PROBE, sock.snd_una - 1, sock.rcv_nxt)
                    probe.origin = self.spec.name
                    sock.tx(sock, probe)
        self.world.sched.call_at(self.world.now() + self.spec.keepalive_every_s, self._generate)

    def idle_expired(self) -> None:
        """The LB's own idle timeout (ALB, proxies): close both legs with FIN."""
        for conn, sock in ((self.front, self.front.ss), (self.back, self.back.cs if self.back else None)):
            if sock is not None and sock.is_open():
                conn.record_close(sock, "idle")
                sock.close()

    # -- sockets of both legs
    def on_established(self, sock: TcpSocket) -> None:
        if sock is self.front.ss:
            self.flow = self.front.path.flows[-1]
            self.flow.proxy = self
            self.back = self.world.open_lb_backend(self)
        else:
            for msg in self.queue:
                sock.send(msg)
            self.queue = []

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        if sock is self.front.ss:
            back = self.back
            if back is not None and back.cs.state == ESTABLISHED:
                back.requests += msg.status == 0
                back.cs.send(msg)
            elif back is not None and back.cs.is_open():
                self.queue.append(msg)
        elif self.front.ss.state == ESTABLISHED:
            self.front.ss.send(msg)

    def _other(self, sock: TcpSocket) -> tuple:
        if sock is self.front.ss:
            return self.back, (self.back.cs if self.back else None)
        return self.front, self.front.ss

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        sock.tag.record_close(sock, "peer")
        sock.close()
        conn, other = self._other(sock)
        if other is not None and other.is_open():
            conn.record_close(other, "peer")
            other.close()

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        sock.tag.record_error(sock, cause, seg)
        conn, other = self._other(sock)
        if other is not None and other.is_open():
            conn.record_close(other, "peer")
            other.close()

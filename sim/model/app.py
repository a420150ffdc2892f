"""Applications: the client's connection slots and the upstream server (DESIGN §3, §4)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.model.kernel import ESTABLISHED, Seg, TcpSocket
from sim.model.records import CONN_ID_STRIDE


@dataclass(frozen=True)
class SockSpec:
    """Socket options an application sets: SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT (0 = sysctl),
    TCP_USER_TIMEOUT in ms."""

    keepalive: bool = False
    idle_s: int = 0
    intvl_s: int = 0
    count: int = 0
    user_timeout_ms: int = 0

    def apply(self, sock: TcpSocket) -> None:
        """Set the options before connect()/listen(), as STATE_PREBIND does (R5, R6)."""
        sock.ka_time_s = self.idle_s
        sock.ka_intvl_s = self.intvl_s
        sock.ka_probes = self.count
        sock.user_timeout_ms = self.user_timeout_ms
        sock.ka = self.keepalive


class Msg:
    """A request or its response. ``status`` 0 = request, 200 = ok, 503 = proxy error."""

    __slots__ = ("req_id", "sent_s", "status")

    def __init__(self, req_id: int, sent_s: float, status: int = 0) -> None:
        self.req_id = req_id
        self.sent_s = sent_s
        self.status = status


class Sampler:
    """Draws from one distribution with its own generator, in blocks (cheap per draw)."""

    __slots__ = ("kind", "a", "b", "rng", "buf", "i")

    BLOCK = 64

    def __init__(self, kind: str, a: float, b: float, rng: np.random.Generator | None) -> None:
        self.kind = kind
        self.a = a
        self.b = b
        self.rng = rng
        self.buf: list[float] = []
        self.i = 0

    def draw(self) -> float:
        """Next value in seconds."""
        if self.kind == "fixed":
            return self.a
        if self.i >= len(self.buf):
            n, rng = self.BLOCK, self.rng
            if self.kind == "exponential":
                arr = rng.exponential(self.a, n)
            elif self.kind == "uniform":
                arr = rng.uniform(self.a, self.b, n)
            else:  # lognormal: a = median, b = sigma
                arr = self.a * np.exp(rng.normal(0.0, self.b, n))
            self.buf = arr.tolist()
            self.i = 0
        v = self.buf[self.i]
        self.i += 1
        return v


class ClientSlot:
    """One long-lived client connection slot: requests, gaps, and a replacement when it dies."""

    __slots__ = ("world", "index", "conn", "gaps", "pending", "req_ids", "outstanding", "server", "conn_seq")

    def __init__(self, world, index: int, gaps: Sampler, server: Server) -> None:
        self.world = world
        self.index = index
        self.server = server
        self.conn_seq = 0
        self.conn = None
        self.gaps = gaps
        self.pending = True  # the first request goes out at open
        self.req_ids = 0
        self.outstanding: Msg | None = None

    def new_conn_id(self) -> int:
        """The next id for a connection opened for this slot (CONN_ID_STRIDE)."""
        self.conn_seq += 1
        return self.index * CONN_ID_STRIDE + self.conn_seq - 1

    def open(self, _arg=None) -> None:
        """Open a (replacement) connection now."""
        self.conn = self.world.open_downstream(self)

    def _request_due(self, _arg=None) -> None:
        conn = self.conn
        if conn is not None and conn.cs.state == ESTABLISHED:
            self._send_request()
        else:
            self.pending = True

    def _send_request(self) -> None:
        self.pending = False
        self.req_ids += 1
        msg = Msg(self.req_ids, self.world.now())
        self.outstanding = msg
        self.conn.requests += 1
        self.conn.in_flight = 1
        self.conn.cs.send(msg)

    def _next_after_gap(self) -> None:
        world = self.world
        world.sched.call_at(world.now() + self.gaps.draw(), self._request_due)

    def _fail_outstanding(self) -> None:
        msg = self.outstanding
        if msg is not None:
            self.outstanding = None
            self.conn.failed += 1
            self.conn.in_flight = 0
            self.conn.hang_s += self.world.now() - msg.sent_s
            self._next_after_gap()

    # -- socket callbacks
    def on_established(self, sock: TcpSocket) -> None:
        if self.pending:
            self._send_request()

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        if self.outstanding is None or msg.req_id != self.outstanding.req_id:
            return
        if msg.status != 200:
            self._fail_outstanding()
            return
        self.outstanding = None
        self.conn.in_flight = 0
        self._next_after_gap()

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        conn = self.conn
        conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        sock.close()
        self._fail_outstanding()
        self.open()

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        self.conn.record_error(sock, cause, seg)
        self._fail_outstanding()
        self.open()


class Server:
    """The upstream application: answers each request after the service time."""

    __slots__ = ("world", "service")

    def __init__(self, world, service: Sampler) -> None:
        self.world = world
        self.service = service

    def on_established(self, sock: TcpSocket) -> None:
        pass

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        delay = self.service.draw()
        if delay <= 0:
            sock.send(Msg(msg.req_id, msg.sent_s, 200))
        else:
            self.world.sched.call_at(self.world.now() + delay, self._respond, (sock, msg))

    def _respond(self, arg) -> None:
        sock, msg = arg
        sock.send(Msg(msg.req_id, msg.sent_s, 200))

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        conn = sock.tag
        conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        sock.close()

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        sock.tag.record_error(sock, cause, seg)

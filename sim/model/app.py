"""Applications: the client's connection slots and the upstream server (DESIGN §3, §4)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sim.facts.names import CONN_ID_STRIDE
from sim.model.clock import LazyTimer
from sim.model.kernel import TcpSocket
from sim.model.messages import GOAWAY, PING, PING_ACK, Msg
from sim.model.middlebox import count_at
from sim.model.pings import Pinger
from sim.model.records import CONNECT_CAUSES, Conn, failure_reason
from sim.model.segment import ESTABLISHED, Seg
from sim.model.storm import Backoff, hold

if TYPE_CHECKING:  # for types only: scenario and slot_classes import this module
    from sim.model.scenario import World
    from sim.model.slot_classes import SlotClass

class Sampler:
    """Draws from one distribution with its own generator, in blocks (cheap per draw)."""

    __slots__ = ("kind", "a", "b", "rng", "buf", "i")

    BLOCK = 16

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
            assert rng is not None  # only a fixed sampler has none
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
    """One long-lived client connection slot: requests, gaps, pings, and a replacement when its
    connection dies."""

    __slots__ = ("world", "index", "conn", "gaps", "pending", "req_ids", "outstanding", "server", "conn_seq",
                 "pool_idle", "cfg", "backoff", "held", "kind")

    def __init__(self, world: World, index: int, gaps: Sampler, server: Server, kind: SlotClass) -> None:
        self.world = world
        self.index = index
        self.server = server
        #: its traffic class (sim.model.slot_classes), and that class's client (ClientSpec)
        self.kind = kind
        cfg = self.cfg = kind.cfg
        self.conn_seq = 0
        self.conn: Conn | None = None
        self.gaps = gaps
        self.pending = True  # the first request goes out at open
        self.req_ids = 0
        self.outstanding: Msg | None = None
        self.pool_idle = (LazyTimer(world.sched, self, ClientSlot._pool_idle_fired)
                          if cfg.pool_idle_s > 0 else None)
        #: client.reconnect backoff: its state (made at the first delay), and whether the slot waits
        #: out a delay now (ClientSlot._backoff_over ends it)
        self.backoff: Backoff | None = None
        self.held = False

    def new_conn_id(self) -> int:
        """The next id for a connection opened for this slot (CONN_ID_STRIDE)."""
        self.conn_seq += 1
        return self.index * CONN_ID_STRIDE + self.conn_seq - 1

    def open(self, _arg=None) -> None:
        """Open a (replacement) connection now."""
        conn = self.conn = self.world.open_downstream(self)
        cfg = self.cfg
        if cfg.ping_interval_s > 0:  # HTTP/2 PINGs count as bytes for L7 idle timers, refresh L4 middleboxes
            Pinger(self.world.sched, conn.cs, cfg.ping_interval_s, 0.0, self).start(self.world.now())
        if cfg.pool_lifetime_s > 0:
            self.world.sched.call_at(self.world.now() + cfg.pool_lifetime_s, self._lifetime_over, conn)

    def _request_due(self, _arg=None) -> None:
        conn = self.conn
        if conn is None:  # the pool closed it while idle: open on demand
            self.pending = True
            if not self.held:  # else the backoff's end opens it (client.reconnect)
                self.open()
        elif conn.cs.state == ESTABLISHED:
            self._send_request()
        else:
            self.pending = True

    def _send_request(self) -> None:
        self.pending = False
        self.req_ids += 1
        now = self.world.now()
        msg = self._new_request(self.req_ids, now)
        self.outstanding = msg
        conn = self.conn
        assert conn is not None  # sent on an established connection
        conn.start_request(now)
        if self.pool_idle is not None:
            self.pool_idle.clear()
        timeouts = self.kind.request_timeouts
        if timeouts is not None:
            timeouts.add(now, self, msg)
        conn.cs.send(msg)

    # -- what a traffic process (process_slot.ProcessSlot) does differently
    def _new_request(self, req_id: int, now_s: float) -> Msg:
        """The request to send now."""
        return Msg(req_id, now_s)

    def _answered(self, reason: str) -> None:
        """The outstanding request got its answer (``reason``: "" when it succeeded, else why it
        failed): the next one goes out one gap later."""
        world = self.world
        world.sched.call_at(world.now() + self.gaps.draw(), self._request_due)

    def _replace(self) -> None:
        """The connection died (or the client closed it to replace it): open a new one at once, or
        after a backoff delay (client.reconnect: backoff)."""
        if self.world.backoff:
            hold(self)
        else:
            self.open()

    def _backoff_over(self, _arg=None) -> None:
        """The backoff delay is over: reconnect (a traffic process's slot only for a waiting request)."""
        self.held = False
        if self.conn is None and self._reopens():
            self.open()

    def _reopens(self) -> bool:
        """Does the slot reconnect by itself when its backoff is over (a gap-driven slot does)?"""
        return True

    def _fail_outstanding(self, reason: str) -> None:
        """The request in flight failed for ``reason`` (records.FAILURE_REASONS)."""
        msg = self.outstanding
        if msg is not None:
            self.outstanding = None
            conn = self.conn
            assert conn is not None  # a request is outstanding on it
            now = self.world.now()
            conn.hang_s += now - msg.sent_s
            conn.count_failure(reason)
            count_at(self.kind.failed_per_s, int(now))
            self._answered(reason)

    def _idle_now(self) -> None:
        if self.pool_idle is not None:
            self.pool_idle.set(self.world.now() + self.cfg.pool_idle_s)

    def _close_and(self, reason: str, reopen: bool) -> None:
        conn = self.conn
        assert conn is not None
        conn.record_close(conn.cs, reason)
        conn.cs.close()
        self.conn = None
        if reopen:
            self._replace()

    # -- timers
    def _request_timed_out(self) -> None:
        """The client's request timeout (its class's queue, SlotClass.request_timeouts) ran out on the
        outstanding request."""
        if self.conn is not None:
            self._fail_outstanding("client_timeout")
            self._close_and("client_timeout", reopen=True)  # HTTP/1.1 cannot reuse it

    def _pool_idle_fired(self) -> None:
        conn = self.conn
        if self.outstanding is None and conn is not None and conn.cs.state == ESTABLISHED:
            self._close_and("idle", reopen=False)

    def _lifetime_over(self, conn: Conn) -> None:
        if conn is self.conn and conn.cs.is_open():
            if self.outstanding is None:
                self._close_and("lifetime", reopen=True)
            else:  # after the current request
                self.world.sched.call_at(self.world.now() + 1.0, self._lifetime_over, conn)

    # -- socket callbacks
    def on_established(self, sock: TcpSocket) -> None:
        if self.backoff is not None:
            self.backoff.reset()
        if self.pending:
            self._send_request()
        else:
            self._idle_now()

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        status = msg.status
        if status < 0:
            if status == PING:  # Envoy's listener http2_keepalive: HTTP/2 answers every PING
                sock.send(Msg(0, self.world.now(), PING_ACK))
            elif status == GOAWAY:  # the server refuses this connection: reconnect
                conn = self.conn
                assert conn is not None
                conn.out_c = "goaway"
                conn.goaways += 1
                self._fail_outstanding("goaway")
                self._close_and("goaway", reopen=True)
            return
        if self.outstanding is None or msg.req_id != self.outstanding.req_id:
            return
        conn = self.conn
        assert conn is not None  # the answer came on it
        if status != 200:
            if status == 503:
                conn.status_503 += 1
            self._fail_outstanding(msg.reason)
            self._idle_or_done(conn)
            return
        self.outstanding = None
        conn.in_flight = 0
        self._idle_or_done(conn)
        self._answered("")

    def _idle_or_done(self, conn: Conn) -> None:
        """An answer came: the connection is idle, or, after traffic.requests_per_connection answers,
        closed (the next request opens a new one)."""
        limit = self.kind.requests_per_conn
        if 0 < limit <= conn.requests:
            self._close_and("max_requests", reopen=False)
        else:
            self._idle_now()

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        conn: Conn = sock.tag
        conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        sock.close()
        if conn is not self.conn:  # a connection this slot already left
            return
        # the server closed its idle connection as the request went out (the keep-alive race), or a
        # middlebox closed it (fin_both, a byte-counting LB's idle timeout)
        self._fail_outstanding("race_reset" if seg.origin == "host" else "reset")
        self.conn = None
        self._replace()

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        conn: Conn = sock.tag
        conn.record_error(sock, cause, seg)
        if conn is not self.conn:
            # A connection this slot already closed, killed later by its own timers (a closed
            # socket's keepalive): the error reaches no application and opens nothing.
            return
        if cause in CONNECT_CAUSES:
            self.conn = None
            self._connect_failed(conn, cause)
            return
        self._fail_outstanding(failure_reason(cause, seg))
        self.conn = None
        self._replace()

    def _connect_failed(self, conn: Conn, reason: str) -> None:
        """The connection was never established (ETIMEDOUT or ECONNREFUSED): the request waiting for
        it fails with that reason, and the slot tries again with its next request, one gap later
        (not at once, as for an established connection that dies)."""
        if self.pending:  # else no request was waiting: the next one is scheduled and opens a connection
            self.pending = False
            now = self.world.now()
            conn.start_request(conn.opened_s)  # the request waited from the open (it was due then)
            conn.hang_s += now - conn.opened_s
            conn.count_failure(reason)
            count_at(self.kind.failed_per_s, int(now))
            self._answered(reason)
        if self.world.reconnect_policy != "next_request":  # immediate: at once; backoff: after a delay
            self._replace()


class ServerConn:
    """The upstream application's side of one connection: responses, its HTTP keep-alive timeout
    (close an idle connection with FIN), and gRPC ping enforcement (GOAWAY too_many_pings)."""

    __slots__ = ("app", "conn", "idle", "last_ping_s", "strikes", "active")

    def __init__(self, app: Server, conn: Conn) -> None:
        self.app = app
        self.conn = conn
        self.idle = LazyTimer(app.world.sched, self, ServerConn._idle_fired) if app.idle_timeout_s > 0 else None
        self.last_ping_s: float | None = None
        self.strikes = 0
        self.active = 0

    def _idle_fired(self) -> None:
        sock = self.conn.ss
        if self.active == 0 and sock.state == ESTABLISHED:
            self.conn.record_close(sock, "idle")
            sock.close()

    def on_established(self, sock: TcpSocket) -> None:
        if self.idle is not None:
            self.idle.set(self.app.world.now() + self.app.idle_timeout_s)

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        world = self.app.world
        if msg.status == PING:
            self._on_ping(sock, world.now())
            return
        if msg.status != 0:
            return
        self.active += 1
        delay = msg.service_s if msg.service_s >= 0 else self.app.service.draw()
        if delay <= 0:
            self._respond((sock, msg))
        else:
            world.sched.call_at(world.now() + delay, self._respond, (sock, msg))

    def _on_ping(self, sock: TcpSocket, now: float) -> None:
        grpc = self.app.grpc
        if grpc is not None:
            # chttp2: a ping sooner than the minimum interval since the last one is a strike; more
            # than max_ping_strikes strikes -> GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
            floor = grpc.min_ping_interval_s if (self.active or grpc.permit_without_calls) else 7200.0
            if self.last_ping_s is not None and now - self.last_ping_s < floor:
                self.strikes += 1
                if self.strikes > grpc.max_ping_strikes:
                    sock.send(Msg(0, now, GOAWAY, "too_many_pings"))
                    self.conn.record_close(sock, "goaway")
                    sock.close()
                    return
            self.last_ping_s = now
        sock.send(Msg(0, now, PING_ACK))

    def _respond(self, arg) -> None:
        sock, msg = arg
        self.active -= 1
        self.strikes = 0  # data sent: gRPC resets the ping strikes
        self.last_ping_s = None
        sock.send(Msg(msg.req_id, msg.sent_s, 200))
        if self.idle is not None and self.active == 0:
            self.idle.set(self.app.world.now() + self.app.idle_timeout_s)

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        self.conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        if self.app.close_on_fin:
            sock.close()

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        self.conn.record_error(sock, cause, seg)


class Server:
    """The upstream application (one per client slot, so its randomness is per slot)."""

    __slots__ = ("world", "service", "idle_timeout_s", "grpc", "close_on_fin")

    def __init__(self, world: World, service: Sampler, idle_timeout_s: float = 0.0, grpc: Any = None,
                 close_on_fin: bool = True) -> None:
        self.world = world
        self.service = service
        self.idle_timeout_s = idle_timeout_s
        self.grpc = grpc
        #: False: a leaky application that never closes what its peer closed (R51: CLOSE_WAIT)
        self.close_on_fin = close_on_fin

    def accept(self, conn) -> ServerConn:
        """The owner of the server socket of a new connection."""
        return ServerConn(self, conn)

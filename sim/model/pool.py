"""Envoy's upstream connection pools (docs/model.md, "Envoy upstream pools").

Each worker (``envoy.concurrency``) keeps one pool for the one upstream host; a downstream
connection is served by the worker ``slot % concurrency``. The pool follows Envoy's
ConnPoolImplBase (source/common/conn_pool/conn_pool_base.cc):

- a new stream takes the connection at the front of ``ready_clients_`` (``newStream``); a client
  that becomes ready again is spliced to the front (LinkedObject::moveBetweenLists), so the most
  recently used idle connection is reused first (LIFO) and the others age towards the idle timeout;
- with no ready connection the stream waits (``pending_streams_``, oldest first) and a connection
  is opened when the waiting streams outnumber what the connecting ones will carry
  (``shouldCreateNewConnection``); a connect failure fails every waiting stream
  (``purgePendingStreams``);
- an HTTP/1.1 connection carries one stream at a time, an HTTP/2 one up to
  ``max_concurrent_streams``; after ``max_requests_per_connection`` streams a connection drains
  (no new streams) and closes when its last one ends;
- the upstream idle timeout closes a connection that has had no stream for that long.

Per-connection facts (probes, drops, resets, close states) are on the pool connection's own row,
whose id is taken from the slot whose request opened it; a request that fails is counted on the
client's row (the 503/504 Envoy answers) and, when it had been sent, on the pool connection's row.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from sim.model.clock import LazyTimer, set_timer
from sim.model.kernel import TcpSocket
from sim.model.messages import PING, PING_ACK, Msg
from sim.model.pings import Pinger
from sim.model.records import CONNECT_CAUSES, Conn, failure_reason
from sim.model.segment import ESTABLISHED, SYN_SENT, Seg

if TYPE_CHECKING:  # for types only: scenario and proxy import this module
    from sim.model.app import ClientSlot
    from sim.model.proxy import EnvoyConn, EnvoySettings
    from sim.model.scenario import World


class PoolConn:
    """One connection of a pool: the owner of Envoy's socket on it, and the streams it carries."""

    __slots__ = ("pool", "slot", "conn", "streams", "draining", "ready", "closed", "idle", "connecting", "pinger")

    def __init__(self, pool: UpstreamPool, slot: ClientSlot) -> None:
        self.pool = pool
        #: the slot whose request opened it: its connection ids and its server application
        self.slot = slot
        self.conn: Conn | None = None
        #: pool stream id -> (the downstream connection, its request, when it was sent, seconds)
        self.streams: dict[int, tuple[EnvoyConn, Msg, float]] = {}
        self.draining = False
        #: in the pool's ready list
        self.ready = False
        self.closed = False
        self.idle: LazyTimer | None = None
        #: the connection while its connect_timeout runs (World.pool_connect_timeouts)
        self.connecting: Conn | None = None
        #: HTTP/2 connection keepalive (``envoy.upstream.http2_keepalive``), from the handshake on
        self.pinger: Pinger | None = None

    # -- timers
    def _idle_fired(self) -> None:
        conn = self.conn
        if not self.streams and not self.closed and conn is not None and conn.cs.state == ESTABLISHED:
            self.pool.close(self, "idle")

    def _connect_timer(self) -> None:
        """The cluster's connect_timeout ran out in SYN_SENT: Envoy abandons the connection and
        fails the waiting streams with 503, reason connect_timeout."""
        conn, self.connecting = self.connecting, None
        if conn is None or self.closed or conn.cs.state != SYN_SENT:
            return
        self.pool.close(self, "connect_timeout")
        self.pool.purge("connect_timeout")

    def ping_timed_out(self) -> None:
        """No PING ACK within the keepalive timeout: Envoy closes the connection
        (onKeepaliveResponseTimeout); its streams fail with reason ``timeout``."""
        self.pool.close(self, "ping_timeout")
        self.pool.lost(self, "timeout")

    # -- socket callbacks
    def on_established(self, sock: TcpSocket) -> None:
        self.connecting = None
        pool = self.pool
        interval_s, timeout_s = pool.cfg.us_h2_keepalive
        if interval_s > 0:
            self.pinger = Pinger(pool.world.sched, sock, interval_s, timeout_s, self)
            self.pinger.start(pool.world.now())
        del pool.connecting[self]
        pool.made_ready(self)

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        if msg.status < 0:
            if msg.status == PING:
                sock.send(Msg(0, self.pool.world.now(), PING_ACK))
            elif msg.status == PING_ACK and self.pinger is not None:
                self.pinger.acked()
            return
        entry = self.streams.pop(msg.req_id, None)
        if entry is None:
            return
        ec, req, _ = entry
        conn = self.conn
        assert conn is not None  # the answer came on it
        conn.in_flight = len(self.streams)
        ec.us = None
        ec.pool_answered(req, msg)
        self.pool.released(self)

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        conn: Conn = sock.tag
        conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        sock.close()
        reason = "reset"  # a middlebox's FIN (fin_both, an LB idle timeout)
        if seg.origin == "host" and self.streams:
            # the server closed an idle connection while a request was on its way (the keep-alive race)
            conn.out_c = reason = "race_reset"
        self.pool.lost(self, reason)

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        conn: Conn = sock.tag
        conn.record_error(sock, cause, seg)
        if self.closed:  # a connection Envoy already closed, killed later by its own timers
            return
        if cause in CONNECT_CAUSES:
            self.pool.forget(self)
            self.pool.purge(cause)
            return
        self.pool.lost(self, "race_reset" if conn.out_c == "race_reset" else failure_reason(cause, seg))


class UpstreamPool:
    """One worker's pool of connections to the upstream host (HTTP/1.1 or HTTP/2)."""

    __slots__ = ("world", "cfg", "ready", "connecting", "pending", "limit", "next_id")

    def __init__(self, world: World, cfg: EnvoySettings) -> None:
        self.world = world
        self.cfg = cfg
        #: established connections that can take a stream; the last is Envoy's ready_clients_.front()
        self.ready: list[PoolConn] = []
        #: connections in their handshake (a dict: a storm has thousands, and each leaves in O(1))
        self.connecting: dict[PoolConn, None] = {}
        #: streams waiting for a connection, oldest first: (downstream connection, its request)
        self.pending: deque[tuple[EnvoyConn, Msg]] = deque()
        #: streams one connection carries at once
        self.limit = cfg.max_streams
        self.next_id = 0

    def _capacity(self) -> int:
        """Streams the connecting connections will take (effectiveConcurrentStreamLimit)."""
        # every connection takes the same number (no loop: a storm has thousands connecting at once)
        cap = self.cfg.max_requests
        return len(self.connecting) * (self.limit if cap <= 0 else min(self.limit, cap))

    def new_stream(self, ec: EnvoyConn, msg: Msg) -> None:
        """``ec``'s request ``msg`` goes upstream: on a ready connection, or it waits for one."""
        if self.ready:
            self._attach(self.ready[-1], ec, msg)
            return
        self.pending.append((ec, msg))
        if len(self.pending) > self._capacity():
            self._open(ec.slot)

    def _open(self, slot: ClientSlot) -> None:
        pc = PoolConn(self, slot)
        world = self.world
        pc.conn = world.open_upstream(pc)
        self.connecting[pc] = None
        if world.pool_connect_timeouts is not None:
            pc.connecting = pc.conn
            world.pool_connect_timeouts.add(world.now(), pc, pc.conn)

    def _attach(self, pc: PoolConn, ec: EnvoyConn, msg: Msg) -> None:
        conn = pc.conn
        assert conn is not None
        now = self.world.now()
        self.next_id += 1
        sid = self.next_id
        conn.start_request(now)
        pc.streams[sid] = (ec, msg, now)
        conn.in_flight = len(pc.streams)
        ec.us = conn
        ec.stream_id = sid
        if pc.idle is not None:
            pc.idle.clear()
        if 0 < self.cfg.max_requests <= conn.requests:
            pc.draining = True  # its last stream: closed when that ends
        if pc.ready and (pc.draining or len(pc.streams) >= self.limit):
            pc.ready = False
            ready = self.ready
            if ready[-1] is pc:  # the usual one: the most recently used, at the end
                ready.pop()
            else:
                ready.remove(pc)
        # the service time is drawn from the requesting slot's server, as without a pool
        service = msg.service_s if msg.service_s >= 0 else ec.slot.server.service.draw()
        conn.cs.send(Msg(sid, msg.sent_s, 0, "", msg.size_bytes, service))

    def made_ready(self, pc: PoolConn) -> None:
        """``pc`` can take streams (connected, or one of its streams ended): waiting streams go on
        it, oldest first (onUpstreamReady); an idle one starts its idle timer."""
        if not pc.draining and len(pc.streams) < self.limit and not pc.ready:
            pc.ready = True
            self.ready.append(pc)
        while self.pending and self.ready:
            ec, msg = self.pending.popleft()
            self._attach(self.ready[-1], ec, msg)
        idle_s = self.cfg.us_idle_s
        if not pc.streams and idle_s > 0:
            world = self.world
            pc.idle = set_timer(pc.idle, world.sched, pc, PoolConn._idle_fired, world.now() + idle_s)

    def released(self, pc: PoolConn) -> None:
        """A stream on ``pc`` ended."""
        if pc.closed:
            return
        if pc.draining:
            if not pc.streams:
                self.close(pc, "max_requests")
            return
        self.made_ready(pc)

    def close(self, pc: PoolConn, reason: str) -> None:
        """Envoy closes ``pc`` (``reason``: idle, max_requests, connect_timeout, or a reset stream)."""
        conn = pc.conn
        assert conn is not None
        self.forget(pc)
        if conn.cs.is_open():
            conn.record_close(conn.cs, reason)
            conn.cs.close()

    def forget(self, pc: PoolConn) -> None:
        """``pc`` leaves the pool."""
        pc.closed = True
        if pc.ready:
            pc.ready = False
            self.ready.remove(pc)
        self.connecting.pop(pc, None)
        pc.connecting = None
        if pc.idle is not None:
            pc.idle.clear()

    def lost(self, pc: PoolConn, reason: str) -> None:
        """``pc`` died under its streams (``reason``: a FAILURE_REASONS value): each fails."""
        self.forget(pc)
        conn = pc.conn
        assert conn is not None
        now = self.world.now()
        streams = list(pc.streams.values())
        pc.streams.clear()
        for ec, msg, sent_s in streams:
            conn.hang_s += now - sent_s
            conn.count_failure(reason)
            ec.us = None
            ec.pool_failed(msg, reason)
        conn.in_flight = 0
        if self.pending and not self.connecting:  # waiting streams need a connection again
            self._open(self.pending[0][0].slot)

    def purge(self, reason: str) -> None:
        """A connect failed: every waiting stream fails with ``reason`` (purgePendingStreams)."""
        waiting = list(self.pending)
        self.pending.clear()
        for ec, msg in waiting:
            ec.pool_failed(msg, reason)

    def cancel(self, ec: EnvoyConn, reason: str, failed: bool) -> None:
        """``ec`` gives up its stream (its client went away, or a route timeout): a waiting one
        leaves the queue; a sent one is reset, which closes an HTTP/1.1 connection and only ends
        the stream on HTTP/2. ``failed``: count it as a failed request on the pool connection."""
        conn = ec.us
        if conn is None:
            for i, (waiting, _) in enumerate(self.pending):
                if waiting is ec:
                    del self.pending[i]
                    break
            return
        ec.us = None
        pc = conn.cs.owner
        assert isinstance(pc, PoolConn)
        entry = pc.streams.pop(ec.stream_id, None)
        if entry is None:
            return
        if failed:
            conn.count_failure(reason)
        conn.in_flight = len(pc.streams)
        if not self.cfg.http2:
            self.close(pc, reason)  # HTTP/1.1 cannot reset a request and keep the connection
        elif pc.draining and not pc.streams:
            self.close(pc, "max_requests")
        else:
            self.released(pc)

"""Envoy as a terminating proxy: a downstream (listener) and an upstream (cluster) connection.

Keepalive probes stop here: each leg has its own kernel sockets. The HTTP idle timeout counts
time with no active request, the upstream pool idle timeout likewise; probes count for neither
(lb-catalog.md §2.12). An HTTP listener's requests go upstream through its worker's connection
pool (sim.model.pool); a ``tcp_proxy`` listener keeps one upstream connection per downstream one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sim.model.app import ClientSlot
from sim.model.clock import LazyTimer, set_timer
from sim.model.kernel import TcpSocket
from sim.model.messages import GOAWAY, PING, PING_ACK, Msg
from sim.model.pings import Pinger
from sim.model.records import CONNECT_CAUSES, Conn, failure_reason
from sim.model.segment import ESTABLISHED, SYN_SENT, Seg

if TYPE_CHECKING:  # for types only: scenario imports this module
    from sim.model.pool import UpstreamPool
    from sim.model.scenario import World


class EnvoySettings:
    """What every Envoy connection of a run reads from its configuration, read once per run."""

    __slots__ = ("ds_idle_s", "us_idle_s", "tcp_proxy", "retry_on_reset", "request_timeout_reason",
                 "connect_timeout_s", "max_requests", "http2", "max_streams", "us_h2_keepalive", "ds_h2_keepalive")

    def __init__(self, spec: Any) -> None:
        """``spec``: the run's EnvoySpec (its hot values copied into typed slots)."""
        #: listener (downstream) and upstream pool idle timeouts, seconds (0: off)
        self.ds_idle_s: float = spec.ds_idle_s
        self.us_idle_s: float = spec.us_idle_s
        self.tcp_proxy: bool = spec.tcp_proxy
        self.retry_on_reset: bool = spec.retry_on_reset
        #: which of the route and stream idle timeouts ends a waiting request
        self.request_timeout_reason: str = spec.request_timeout_reason
        #: the cluster's connect_timeout, seconds (0: off)
        self.connect_timeout_s: float = spec.connect_timeout_s
        #: max_requests_per_connection on the upstream leg (0: unlimited)
        self.max_requests: int = spec.max_requests_per_connection
        #: pool connections multiplex streams (HTTP/2), at most ``max_streams`` at once (1: HTTP/1.1)
        self.http2: bool = spec.protocol == "http2"
        self.max_streams: int = spec.max_concurrent_streams if self.http2 else 1
        #: HTTP/2 connection keepalive (interval_s, timeout_s) of the pool's and the listener's
        #: connections; interval 0: off
        self.us_h2_keepalive: tuple[float, float] = spec.upstream_h2_keepalive if self.http2 else (0.0, 0.0)
        self.ds_h2_keepalive: tuple[float, float] = spec.listener_h2_keepalive


class EnvoyConn:
    """Envoy's handling of one downstream connection and its upstream connection."""

    __slots__ = ("world", "slot", "ds", "us", "active", "queued", "ds_idle", "us_idle", "cfg", "retried",
                 "connecting", "draining", "pool", "stream_id", "pinger")

    def __init__(self, world: World, slot: ClientSlot, ds_conn: Conn, cfg: EnvoySettings) -> None:
        self.world = world
        self.slot = slot
        self.ds = ds_conn
        self.us: Conn | None = None  # the upstream leg (with a pool: the one carrying the request now)
        #: the worker's upstream pool (None: tcp_proxy, one upstream connection of its own)
        self.pool: UpstreamPool | None = world.pool_for(slot)
        #: the pool's id of the stream carrying the request (valid while ``us`` is set)
        self.stream_id = 0
        #: the listener's HTTP/2 connection keepalive on the downstream connection
        self.pinger: Pinger | None = None
        self.cfg = cfg
        self.active: Msg | None = None
        self.queued: Msg | None = None
        self.retried = False
        #: the upstream connection while its connect_timeout runs (World.connect_timeouts)
        self.connecting: Conn | None = None
        # idle timers (listener and upstream pool), made when first set (set_timer)
        self.ds_idle: LazyTimer | None = None
        self.us_idle: LazyTimer | None = None
        #: a rollout drains this connection after the request in flight (GOAWAY: True, FIN: False; None: no)
        self.draining: bool | None = None

    # -- helpers
    def _idle_from_now(self) -> None:
        now = self.world.now()
        sched = self.world.sched
        ds_s, us_s = self.cfg.ds_idle_s, self.cfg.us_idle_s
        if ds_s > 0:
            self.ds_idle = set_timer(self.ds_idle, sched, self, EnvoyConn._ds_idle_fired, now + ds_s)
        if us_s > 0 and self.us is not None and self.pool is None:
            self.us_idle = set_timer(self.us_idle, sched, self, EnvoyConn._us_idle_fired, now + us_s)

    def _close_upstream(self, reason: str, failed: bool = False) -> None:
        """Give up the upstream side of this connection (``failed``: count the request in flight as
        failed on the upstream connection)."""
        if self.pool is not None:
            self.pool.cancel(self, reason, failed)
            return
        us = self.us
        if failed and us is not None and us.in_flight:
            us.count_failure(reason)
        if us is not None and us.cs.is_open():
            us.record_close(us.cs, reason)
            us.cs.close()
        self.us = None

    def _answer(self, status: int, reason: str = "") -> None:
        msg = self.active
        self.active = None
        if msg is not None and self.ds.ss.state == ESTABLISHED:
            self.ds.ss.send(Msg(msg.req_id, msg.sent_s, status, reason))
        if self.draining is not None:
            self.drain(self.draining)
            return
        self._idle_from_now()

    def drain(self, goaway: bool) -> None:
        """A rollout (storm kind rollout) drains this downstream connection: after the request in
        flight is answered, Envoy sends GOAWAY (HTTP/2) and closes, or just closes (FIN), and closes
        its upstream connection too (lb-catalog.md 2.12: "For downstream HTTP/2: GOAWAY, drain,
        then close")."""
        ss = self.ds.ss
        if not ss.is_open():
            return
        if self.active is not None and not self.cfg.tcp_proxy:
            self.draining = goaway
            return
        self.draining = None
        if goaway and ss.state == ESTABLISHED:
            ss.send(Msg(0, self.world.now(), GOAWAY, "drain"))
        self.ds.record_close(ss, "goaway" if goaway else "drain")
        ss.close()
        self._close_upstream("drain")

    def _forward(self, msg: Msg) -> None:
        if self.pool is not None:
            self.pool.new_stream(self, msg)
            return
        us = self.us
        if us is None or not us.cs.is_open():
            self.us = self.world.open_upstream(self)
            self.queued = msg
            if self.world.connect_timeouts is not None:
                self.connecting = self.us
                self.world.connect_timeouts.add(self.world.now(), self, self.us)
        elif us.cs.state != ESTABLISHED:
            self.queued = msg
        else:
            us.start_request(self.world.now())
            us.cs.send(msg)

    # -- timers
    def _ds_idle_fired(self) -> None:
        if (self.active is None or self.cfg.tcp_proxy) and self.ds.ss.is_open():
            self.ds.record_close(self.ds.ss, "idle")
            self.ds.ss.close()
            self._close_upstream("idle")

    def _us_idle_fired(self) -> None:
        if self.active is None:
            self._close_upstream("idle")

    def _connect_timer(self) -> None:
        """The cluster's connect_timeout ran out with the upstream connection still in SYN_SENT:
        Envoy abandons it and answers 503, reason connect_timeout (World.connect_timeouts)."""
        us, self.connecting = self.connecting, None
        if us is None or us is not self.us or us.cs.state != SYN_SENT:
            return
        us.record_close(us.cs, "connect_timeout")
        us.cs.close()
        self._upstream_failed("connect_timeout")

    def _request_timer(self) -> None:
        """Route timeout (504) or stream idle timeout (408), whichever is shorter; no bytes flow on
        a waiting stream in this model, so both count from the request (World.route_timeouts)."""
        reason = self.cfg.request_timeout_reason
        self._close_upstream(reason, failed=True)  # Envoy resets the upstream stream; HTTP/1.1 loses the connection
        self._answer(504 if reason == "route_timeout" else 408, reason)

    # -- socket callbacks (both legs)
    def on_established(self, sock: TcpSocket) -> None:
        if sock is self.ds.ss:
            self._idle_from_now()  # a connection that never carries a request is idle from the start
            interval_s, timeout_s = self.cfg.ds_h2_keepalive
            if interval_s > 0 and not self.cfg.tcp_proxy:
                self.pinger = Pinger(self.world.sched, sock, interval_s, timeout_s, self)
                self.pinger.start(self.world.now())
            return
        self.connecting = None
        if self.queued is not None:
            msg, self.queued = self.queued, None
            us = self.us
            assert us is not None  # this is its socket
            us.start_request(self.world.now())
            sock.send(msg)

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        if msg.status < 0:
            if self.cfg.tcp_proxy:  # tcp_proxy forwards bytes, whatever they are
                self._idle_from_now()
                other = self.us.cs if sock is self.ds.ss and self.us is not None else self.ds.ss
                if other is not None and other.state == ESTABLISHED:
                    other.send(msg)
            elif msg.status == PING:  # HTTP/2 frames are hop-by-hop: Envoy answers PINGs itself
                sock.send(Msg(0, self.world.now(), PING_ACK))
            elif msg.status == PING_ACK and sock is self.ds.ss and self.pinger is not None:
                self.pinger.acked()
            return
        if sock is self.ds.ss:
            self.active = msg
            self.retried = False
            if self.world.route_timeouts is not None:
                self.world.route_timeouts.add(self.world.now(), self, msg)
            if self.cfg.tcp_proxy:
                self._idle_from_now()
            self._forward(msg)
        else:
            if self.active is not None and msg.req_id == self.active.req_id:
                us = self.us
                assert us is not None  # the answer came on it
                us.in_flight = 0
                self._answer(msg.status, msg.reason)
                if 0 < self.cfg.max_requests <= us.requests:  # the next request opens a new one
                    self._close_upstream("max_requests")

    def _upstream_failed(self, reason: str) -> None:
        """The upstream connection died (``reason``: a FAILURE_REASONS value, or ``upstream_closed``
        when nothing was in flight); a request in flight gets a 503 with that reason, or a retry."""
        us = self.us
        self.us = None
        self.queued = None
        self.connecting = None
        active = self.active
        if active is None or us is None:
            return
        if us.in_flight:  # else it was still queued for the handshake, never sent on this connection
            us.hang_s += self.world.now() - us.sent_s
            us.count_failure(reason)
        self._retry_or_fail(active, reason)

    def _retry_or_fail(self, active: Msg, reason: str) -> None:
        """The upstream failed ``active``: retry it once (retry_on reset) or answer 503."""
        if self.cfg.retry_on_reset and not self.retried and reason not in CONNECT_CAUSES:
            # retry_on "reset" does not cover a connect failure ("connect-failure" does)
            self.retried = True  # retry_on: reset, once, on a new connection
            self._forward(active)
            return
        self._answer(503, reason)

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        conn = sock.tag
        conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        sock.close()
        if sock is self.ds.ss:
            self._close_upstream("peer")
        else:
            reason = "upstream_closed"
            if self.active is not None:
                reason = "reset"  # a middlebox's FIN (fin_both, an LB idle timeout)
                if seg.origin == "host":
                    # the server closed an idle connection while this request was on its way: Envoy's
                    # "upstream connect error or disconnect/reset before headers ... connection termination"
                    conn.out_c = reason = "race_reset"
            self._upstream_failed(reason)

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        conn: Conn = sock.tag
        conn.record_error(sock, cause, seg)
        if sock is self.ds.ss:
            self.active = None
            self._close_upstream("peer")
        elif conn is self.us:  # not an upstream connection Envoy already closed
            self._upstream_failed("race_reset" if conn.out_c == "race_reset" else failure_reason(cause, seg))

    def ping_timed_out(self) -> None:
        """No PING ACK from the client within the listener's keepalive timeout: Envoy closes the
        downstream connection (and gives up its request upstream)."""
        ds = self.ds
        if ds.ss.is_open():
            ds.record_close(ds.ss, "ping_timeout")
            ds.ss.close()
        self.active = None
        self._close_upstream("peer")

    # -- the pool's calls (sim.model.pool)
    def pool_answered(self, req: Msg, msg: Msg) -> None:
        """The answer to ``req`` came on a pool connection."""
        if self.active is req:
            self._answer(msg.status, msg.reason)

    def pool_failed(self, req: Msg, reason: str) -> None:
        """The pool connection carrying (or to carry) ``req`` failed for ``reason``."""
        if self.active is req:
            self._retry_or_fail(req, reason)

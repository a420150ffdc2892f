"""Envoy as a terminating proxy: a downstream (listener) and an upstream (cluster) connection.

Keepalive probes stop here: each leg has its own kernel sockets. The HTTP idle timeout counts
time with no active request, the upstream pool idle timeout likewise; probes count for neither
(lb-catalog.md §2.12). In the core model Envoy keeps one upstream connection per downstream one.
"""

from __future__ import annotations

from sim.model.app import Msg
from sim.model.clock import LazyTimer
from sim.model.kernel import ESTABLISHED, Seg, TcpSocket


class EnvoyConn:
    """Envoy's handling of one downstream connection and its upstream connection."""

    __slots__ = ("world", "slot", "ds", "us", "active", "queued", "ds_idle", "us_idle", "ds_idle_s", "us_idle_s")

    def __init__(self, world, slot, ds_conn, ds_idle_s: float, us_idle_s: float) -> None:
        self.world = world
        self.slot = slot
        self.ds = ds_conn
        self.us = None
        self.active: Msg | None = None
        self.queued: Msg | None = None
        self.ds_idle_s = ds_idle_s
        self.us_idle_s = us_idle_s
        self.ds_idle = LazyTimer(world.sched, self._ds_idle_fired) if ds_idle_s > 0 else None
        self.us_idle = LazyTimer(world.sched, self._us_idle_fired) if us_idle_s > 0 else None

    # -- helpers
    def _now(self) -> float:
        return self.world.now()

    def _idle_from_now(self) -> None:
        now = self._now()
        if self.ds_idle is not None:
            self.ds_idle.set(now + self.ds_idle_s)
        if self.us_idle is not None and self.us is not None:
            self.us_idle.set(now + self.us_idle_s)

    def _close_upstream(self, reason: str) -> None:
        us = self.us
        if us is not None and us.cs.is_open():
            us.record_close(us.cs, reason)
            us.cs.close()
        self.us = None

    def _answer(self, status: int) -> None:
        msg = self.active
        self.active = None
        if msg is not None and self.ds.ss.state == ESTABLISHED:
            self.ds.ss.send(Msg(msg.req_id, msg.sent_s, status))
        self._idle_from_now()

    # -- timers
    def _ds_idle_fired(self) -> None:
        if self.active is None and self.ds.ss.is_open():
            self.ds.record_close(self.ds.ss, "idle")
            self.ds.ss.close()
            self._close_upstream("idle")

    def _us_idle_fired(self) -> None:
        if self.active is None:
            self._close_upstream("idle")

    # -- socket callbacks (both legs)
    def on_established(self, sock: TcpSocket) -> None:
        if sock is not self.ds.ss and self.queued is not None:
            msg, self.queued = self.queued, None
            self.us.requests += 1
            self.us.in_flight = 1
            sock.send(msg)

    def on_data(self, sock: TcpSocket, msg: Msg) -> None:
        if sock is self.ds.ss:
            self.active = msg
            us = self.us
            if us is None or not us.cs.is_open():
                self.us = self.world.open_upstream(self)
                self.queued = msg
            elif us.cs.state != ESTABLISHED:
                self.queued = msg
            else:
                us.requests += 1
                us.in_flight = 1
                us.cs.send(msg)
        else:
            if self.active is not None and msg.req_id == self.active.req_id:
                self.us.in_flight = 0
                self._answer(msg.status)

    def _upstream_failed(self, now: float) -> None:
        us = self.us
        if self.active is not None and us is not None:
            us.failed += 1
            us.in_flight = 0
            us.hang_s += now - self.active.sent_s
            self._answer(503)
        self.us = None
        self.queued = None

    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None:
        conn = sock.tag
        conn.record_close(sock, "expiry" if seg.origin != "host" else "peer")
        sock.close()
        if sock is self.ds.ss:
            self._close_upstream("peer")
        else:
            self._upstream_failed(self._now())

    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None:
        sock.tag.record_error(sock, cause, seg)
        if sock is self.ds.ss:
            self.active = None
            self._close_upstream("peer")
        else:
            self._upstream_failed(self._now())

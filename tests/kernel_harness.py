"""A single socket on a controllable wire, for the worked examples of kernel-keepalive.md §14."""

from __future__ import annotations

from sim.model.clock import Clock, Scheduler
from sim.model.host import Host, SockOpts
from sim.model.kernel import TcpSocket
from sim.model.segment import ACK, PROBE, RST, SYNACK, Seg


class Harness:
    """``peer``: 'dead' (everything vanishes), 'live' (probes answered after ``rtt_s``), or
    'rst' (the first probe is answered with an exact RST, as a stateless middlebox does)."""

    def __init__(self, *, peer: str = "dead", hz: int = 250, exact: bool = True, phase_j: float = 0.0,
                 rtt_s: float = 0.002, sysctl: dict | None = None) -> None:
        self.sched = Scheduler()
        self.host = Host("h", self.sched, Clock(hz, exact, phase_j), sysctl)
        self.sock = TcpSocket(self.host, self, self._tx)
        self.sock.set_rtt(rtt_s)
        self.peer = peer
        self.rtt_s = rtt_s
        self.sent: list[tuple[float, str]] = []
        self.errors: list[tuple[float, str, str]] = []

    # socket owner
    def on_established(self, sock): pass
    def on_data(self, sock, payload): pass
    def on_peer_fin(self, sock, seg): pass

    def on_error(self, sock, errno, cause, seg):
        self.errors.append((self.sched.now_s, errno, cause))

    def _tx(self, sock, seg: Seg) -> None:
        now = self.sched.now_s
        self.sent.append((now, {PROBE: "probe", RST: "rst", ACK: "ack"}.get(seg.kind, str(seg.kind))))
        if seg.kind == PROBE and self.peer == "live":
            reply = Seg(ACK, 0, sock.snd_nxt)
            reply.probe_ack = True
            self.sched.call_at(now + self.rtt_s, sock.receive, reply)
        elif seg.kind == PROBE and self.peer == "rst":
            self.sched.call_at(now + self.rtt_s, sock.receive, Seg(RST, seg.ack, 0))

    def establish(self, keepalive=(300, 20, 4), user_timeout_ms: int = 0) -> None:
        """Options set before connect() (R6), then the SYN-ACK arrives at t = 0 (T0)."""
        s = self.sock
        idle, intvl, count = keepalive or (0, 0, 0)
        s.opts = SockOpts(bool(keepalive), idle, intvl, count, user_timeout_ms)
        s.connect()
        self.sent.clear()
        s.receive(Seg(SYNACK, 0, 0))
        self.sent.clear()

    def run(self, until: float) -> None:
        self.sched.run(until)

    def times(self, kind: str) -> list[float]:
        return [t for t, k in self.sent if k == kind]

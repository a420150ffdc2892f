"""A network namespace (clock and sysctls), the socket options an application sets, and what a
socket tells its application (kernel-keepalive.md R1, R2, R30)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sim.facts.kernel import DEFAULT_SYSCTL, TCP_RTO_MIN_S
from sim.model.clock import Clock, Scheduler
from sim.model.segment import Seg

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket


@functools.lru_cache(maxsize=64)
def initial_rto_s(rtt_s: float, hz: int) -> float:
    """RTO0 = SRTT + rto_min rounded up to a jiffy (R30); cached, so a fleet's sockets share it."""
    return math.ceil((rtt_s + TCP_RTO_MIN_S) * hz - 1e-6) / hz


@dataclass(frozen=True, slots=True)
class SockOpts:
    """Socket options an application sets: SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT in seconds and
    count (0 = use the netns sysctl, R1), TCP_USER_TIMEOUT in ms (0 = off), TCP_SYNCNT (0 = the
    sysctl tcp_syn_retries, kernel-lifecycle.md R43)."""

    keepalive: bool = False
    idle_s: int = 0
    intvl_s: int = 0
    count: int = 0
    user_timeout_ms: int = 0
    syncnt: int = 0


NO_OPTS = SockOpts()


class Host:
    """A network namespace: its clock (HZ, timer mode, wheel phase) and its sysctls (R1, R2, R39)."""

    __slots__ = ("name", "sched", "clock", "sysctl")

    def __init__(self, name: str, sched: Scheduler, clock: Clock, sysctl: dict[str, int] | None = None) -> None:
        self.name = name
        self.sched = sched
        self.clock = clock
        self.sysctl = dict(DEFAULT_SYSCTL)
        if sysctl:
            self.sysctl.update(sysctl)

    @property
    def now(self) -> float:
        return self.sched.now_s


class SocketOwner(Protocol):
    """What a socket tells its application."""

    def on_established(self, sock: TcpSocket) -> None: ...
    def on_data(self, sock: TcpSocket, payload: Any) -> None: ...
    def on_peer_fin(self, sock: TcpSocket, seg: Seg) -> None: ...
    def on_error(self, sock: TcpSocket, errno: str, cause: str, seg: Seg | None) -> None: ...

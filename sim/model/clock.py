"""Event scheduling and per-host kernel timer clocks.

Two timer modes (DESIGN §2, kernel-keepalive.md §11):

* ``exact``: a timer armed for ``d`` seconds fires at ``now + d`` (nominal kernel times).
* ``wheel``: Linux's non-cascading timer wheel. Durations are whole jiffies at ``hz``; a timer
  armed at jiffy J for d jiffies fires at ``floor((J + d) / g) * g + g`` with ``g = 8**level(d)``
  (rule 40). Each host gets a random jiffy phase, so its wheel boundaries are not aligned with
  t = 0 or with other hosts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappush
from typing import Any

# LVL_START(1..7) in jiffies: the level of a timer is how many of these its delay reaches (§11).
_LEVEL_THRESHOLDS_J = (63, 504, 4032, 32256, 258048, 2064384, 16515072)
#: Float slack when comparing nominal times (seconds); far below any modelled delay.
EPS_S = 1e-9


def wheel_granularity_j(delay_j: int) -> int:
    """Granularity in jiffies of the wheel level a ``delay_j``-jiffy timer lands in (rule 40)."""
    level = 0
    for threshold in _LEVEL_THRESHOLDS_J:
        if delay_j >= threshold:
            level += 1
        else:
            break
    return 8**level


def wheel_fire_j(armed_j: int, delay_j: int) -> int:
    """Jiffy at which a timer armed at ``armed_j`` for ``delay_j`` jiffies fires (rule 40)."""
    g = wheel_granularity_j(delay_j)
    return (armed_j + delay_j) // g * g + g


def _dispatch(call: _Call) -> None:
    call.fn(call.arg)


def _deliver(seg: Any) -> None:
    seg.dst.receive(seg)


_DELIVER = (_deliver,)


class _Call:
    """A minimal SimPy-compatible event: ``Environment.step`` pops it and runs its callbacks."""

    __slots__ = ("callbacks", "_ok", "fn", "arg")

    def __init__(self, fn: Callable[[Any], None], arg: Any) -> None:
        self.callbacks = (_dispatch,)
        self._ok = True
        self.fn = fn
        self.arg = arg


class Scheduler:
    """Schedules plain function calls on a SimPy environment.

    A packet arrival or timer expiry is one heap entry holding a slotted object, instead of a
    ``Timeout`` plus a callback closure: the model's hot path is made of these.
    """

    __slots__ = ("env", "_queue", "_eid")

    def __init__(self, env: Any) -> None:
        self.env = env
        self._queue = env._queue
        self._eid = env._eid

    def call_at(self, t_s: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` at simulated time ``t_s`` (never in the past)."""
        heappush(self._queue, (t_s, 1, next(self._eid), _Call(fn, arg)))

    def deliver_at(self, t_s: float, seg: Any, dst: Any) -> None:
        """Hand ``seg`` to ``dst.receive`` at ``t_s``; the segment is its own heap entry."""
        seg.callbacks = _DELIVER
        seg._ok = True
        seg.dst = dst
        heappush(self._queue, (t_s, 1, next(self._eid), seg))

    def events_scheduled(self) -> int:
        """How many events have been scheduled on the environment so far."""
        return next(self._eid)


class Clock:
    """One host's view of kernel time: ticks, durations and timer firing times.

    In ``exact`` mode ticks are seconds (floats). In ``wheel`` mode ticks are jiffies (ints) and
    every timer is quantised by the timer-wheel rule (rule 40).
    """

    __slots__ = ("exact", "hz", "phase_j", "tick_s")

    def __init__(self, hz: int, exact: bool, phase_j: float = 0.0) -> None:
        self.exact = exact
        self.hz = hz
        self.phase_j = phase_j
        self.tick_s = 1.0 / hz

    def ticks(self, t_s: float) -> float:
        """Kernel time at ``t_s``: seconds (exact) or the jiffies counter (wheel)."""
        if self.exact:
            return t_s
        return math.floor(t_s * self.hz + self.phase_j + 1e-6)

    def dur(self, seconds: float) -> float:
        """A configured duration in ticks (``I * HZ`` in the kernel)."""
        if self.exact:
            return seconds
        return int(round(seconds * self.hz))

    def dur_ceil(self, seconds: float) -> float:
        """A measured duration (RTO, RTT) rounded up to whole ticks, as usecs_to_jiffies does."""
        if self.exact:
            return seconds
        return int(math.ceil(seconds * self.hz - 1e-6))

    def fire_time(self, now_s: float, delay_ticks: float) -> float:
        """Simulated time at which a timer armed now for ``delay_ticks`` fires."""
        if self.exact:
            return now_s + delay_ticks
        armed_j = self.ticks(now_s)
        fire_j = wheel_fire_j(armed_j, max(0, int(delay_ticks)))
        return (fire_j - self.phase_j) * self.tick_s

    def elapsed_at_least(self, elapsed: float, limit: float) -> bool:
        """``elapsed >= limit`` in ticks, tolerant of float noise in exact mode."""
        if self.exact:
            return elapsed >= limit - EPS_S
        return elapsed >= limit


class LazyTimer:
    """A deadline with at most one pending heap entry, re-checked when it fires.

    Moving the deadline later schedules nothing: the pending entry fires, finds it is early and
    re-queues itself at the new deadline. Clearing it only forgets the deadline. So a timer that
    is pushed back on every packet (idle timers) costs one event per idle period, not per packet.
    """

    __slots__ = ("sched", "fn", "due_s", "pending_s")

    def __init__(self, sched: Scheduler, fn: Callable[[], None]) -> None:
        self.sched = sched
        self.fn = fn
        self.due_s: float | None = None
        self.pending_s: float | None = None

    def set(self, due_s: float) -> None:
        """Fire ``fn()`` at ``due_s`` unless moved or cleared before then."""
        self.due_s = due_s
        pending = self.pending_s
        if pending is None or pending > due_s:
            self.pending_s = due_s
            self.sched.call_at(due_s, self._fired, due_s)

    def defer(self, due_s: float) -> None:
        """Record a deadline without scheduling it: ``kick`` schedules it if it turns out to be
        needed. For timers that are cleared before they fire unless something goes wrong."""
        self.due_s = due_s

    def kick(self) -> None:
        """Schedule a deferred deadline (no-op if there is none or it is already queued)."""
        due = self.due_s
        if due is not None:
            pending = self.pending_s
            if pending is None or pending > due:
                self.pending_s = due
                self.sched.call_at(due, self._fired, due)

    def clear(self) -> None:
        """Forget the deadline; a pending entry will find nothing to do."""
        self.due_s = None

    def _fired(self, at_s: float) -> None:
        if self.pending_s != at_s:
            return  # an earlier entry replaced this one
        self.pending_s = None
        due = self.due_s
        if due is None:
            return
        if due > at_s:
            self.pending_s = due
            self.sched.call_at(due, self._fired, due)
            return
        self.due_s = None
        self.fn()

"""Event scheduling and per-host kernel timer clocks.

Two timer modes (DESIGN §2, kernel-keepalive.md §11):

* ``exact``: a timer armed for ``d`` seconds fires at ``now + d`` (nominal kernel times).
* ``wheel``: Linux's non-cascading timer wheel. Durations are whole jiffies at ``hz``; a timer
  armed at jiffy J for d jiffies fires at ``floor((J + d) / g) * g + g`` with ``g = 8**level(d)``
  (rule 40). Each host gets a random jiffy phase, so its wheel boundaries are not aligned with
  t = 0 or with other hosts.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from sim.facts.wheel import wheel_fire_j
from sim.model.eventheap import Entry, before, heapify, pop, push
from sim.spec import Shortcuts

if TYPE_CHECKING:  # for types only: kernel imports this module
    from sim.model.kernel import TcpSocket
    from sim.model.segment import Seg

#: Float slack when comparing nominal times (seconds); far below any modelled delay.
EPS_S: Final = 1e-9
# Final module attributes are static variables when compiled (a plain import is a dict lookup).
heappop: Final = heapq.heappop
heappush: Final = heapq.heappush
#: A timer's deadline when it has none (LazyTimer).
NEVER: Final = math.inf
#: The first id of an ordinary entry. Pure ACKs delivered for real take ids below it
#: (``deliver_ack_at``), so at equal times they come first, as the lazy ones are applied (acks.py).
FIRST_EID: Final = 1 << 48
#: Added to the id of a keepalive timer's entry (``Scheduler.push_last``): at equal times a keepalive
#: expiry runs after every other entry, whenever either was queued. A virtual expiry
#: (keepalive.py) queues its re-arm earlier than the real expiry would, so an order by queueing
#: would differ between the engines; an order by kind does not. Still below 2**62, a short int
#: when compiled.
LAST_EID: Final = 1 << 60


class _Call:
    """A plain function call on the event queue: ``fn(arg)``."""

    __slots__ = ("fn", "arg")

    def __init__(self, fn: Callable[[Any], None], arg: Any) -> None:
        self.fn = fn
        self.arg = arg


class Scheduler:
    """The model's own event queue, and the loop that runs it.

    An event is one heap entry (``eventheap.Entry``: time, id, object) whose object is a ``_Call``, a
    segment on its way to a socket (``deliver_at``), or a ``LazyTimer``. Ids come from this scheduler's own
    counter, so entries at one time run in the order they were queued; keepalive timers go after
    all of them (``push_last``), pure ACKs delivered for real before (``deliver_ack_at``).

    A fleet keeps several timers per connection pending, minutes ahead, and one heap of them all
    would be walked from top to bottom, through memory nothing else touches, by every push and pop.
    So the queue is split three ways (a calendar queue, ``Shortcuts.calendar_queue``):

    * segments in flight (due within a few hop delays) wait in a small heap of their own, ``near``;
    * timers due before ``window_end_s`` wait in the heap ``queue``;
    * later timers wait unsorted in one-second buckets, and the earliest bucket is heaped into
      ``queue`` when that runs dry.

    ``run`` always takes the smaller head of the two heaps, and no bucket holds anything earlier
    than them, so the order is exactly that of one queue ordered by ``(time, id)``
    (``OneQueueScheduler`` is that one queue).

    User-written SimPy processes (``traffic.process``) run on a real ``simpy.Environment``, kept in
    step through its public API only: the scheduler queues a wake-up at ``env.peek()`` and there
    steps the environment through everything due by then (``watch_env``, user_process.py). A run
    without processes has no environment and pays nothing for it.

    ``horizon_s``: the end of the run, when the caller knows it. Nothing is queued at or after it,
    since such an entry could never run (``run`` stops before it) and would only hold memory.
    ``shortcuts``: the work-saving shortcuts the model takes (docs/model.md); their switches are
    copied into typed attributes here, where the model reads them.
    """

    __slots__ = ("queue", "near", "eid", "ack_eid", "horizon_s", "events_run", "window_end_s", "buckets", "bucket_keys",
                 "now_s", "lazy_acks", "virtual_expiry", "lazy_loss_probes", "shared_timeouts", "procs",
                 "procs_wake_s")

    def __init__(self, horizon_s: float = math.inf, shortcuts: Shortcuts | None = None) -> None:
        sc = shortcuts if shortcuts is not None else Shortcuts()
        self.queue: list[Entry] = []
        self.near: list[Entry] = []
        self.eid = FIRST_EID
        self.ack_eid = 0
        self.horizon_s = horizon_s
        self.events_run = 0
        self.window_end_s = 0.0
        self.buckets: dict[int, list[Entry]] = {}
        self.bucket_keys: list[int] = []
        #: the simulated time (seconds); the model reads this plain attribute on every event
        self.now_s = 0.0
        #: Shortcuts.lazy_acks: pure ACKs are applied when their receiver next acts (network.Path)
        self.lazy_acks: bool = sc.lazy_acks
        #: Shortcuts.virtual_keepalive_expiry: an answered probe's expiry is not queued (keepalive.py)
        self.virtual_expiry: bool = sc.virtual_keepalive_expiry
        #: Shortcuts.lazy_loss_probes: a TLP timer is queued only when a segment is lost (kernel.py)
        self.lazy_loss_probes: bool = sc.lazy_loss_probes
        #: Shortcuts.shared_request_timeouts: one FIFO per fixed-length timeout (timeouts.py)
        self.shared_timeouts: bool = sc.shared_request_timeouts
        #: the run's user-written traffic processes and their SimPy environment
        #: (sim.model.user_process.UserProcesses), when there are any
        self.procs: Any = None
        #: the time of the queued wake-up of ``procs`` (NEVER: none queued)
        self.procs_wake_s = NEVER

    def push(self, t_s: float, ev: Any) -> None:
        """Queue a timer-like event (``_Call`` or ``LazyTimer``) at ``t_s``."""
        self.eid += 1
        self._place(t_s, self.eid, ev)

    def push_last(self, t_s: float, ev: Any) -> None:
        """``push`` for a keepalive timer: at ``t_s`` it runs after every other entry (``LAST_EID``)."""
        self.eid += 1
        self._place(t_s, self.eid + LAST_EID, ev)

    def reserve_id(self) -> int:
        """Take the next id now, for an entry that may be queued later (``push_as``)."""
        self.eid += 1
        return self.eid

    def push_as(self, t_s: float, eid: int, ev: Any) -> None:
        """Queue ``ev`` at ``t_s`` with an id taken earlier (``reserve_id``): at equal times it runs
        where an entry queued when the id was taken would."""
        self._place(t_s, eid, ev)

    def _place(self, t_s: float, eid: int, ev: Any) -> None:
        entry = Entry(t_s, eid, ev)
        if t_s < self.window_end_s:
            push(self.queue, entry)
            return
        key = math.floor(t_s)  # one-second buckets; floor, unlike //, needs no fmod when compiled
        bucket = self.buckets.get(key)
        if bucket is None:
            self.buckets[key] = [entry]
            heappush(self.bucket_keys, key)
        else:
            bucket.append(entry)

    def _next_window(self) -> None:
        """Heap the earliest bucket into ``queue``."""
        key = heappop(self.bucket_keys)
        entries = self.buckets.pop(key)
        self.window_end_s = float(key + 1)
        queue = self.queue
        if queue:
            for entry in entries:
                push(queue, entry)
        else:
            queue.extend(entries)
            heapify(queue)

    def clear(self) -> None:
        """Drop everything still queued (the end of a run)."""
        self.queue.clear()
        self.near.clear()
        self.buckets.clear()
        self.bucket_keys.clear()

    def call_at(self, t_s: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Run ``fn(arg)`` at simulated time ``t_s`` (never in the past)."""
        if t_s < self.horizon_s:
            self.push(t_s, _Call(fn, arg))

    def deliver_at(self, t_s: float, seg: Seg, dst: TcpSocket) -> None:
        """Hand ``seg`` to ``dst.receive`` at ``t_s``; the segment is its own heap entry."""
        if t_s < self.horizon_s:
            seg.dst = dst
            self.eid += 1
            push(self.near, Entry(t_s, self.eid, seg))

    def deliver_ack_at(self, t_s: float, seg: Seg, dst: TcpSocket) -> None:
        """``deliver_at`` for a pure ACK to an established socket: at equal times it comes before
        every other event, as a lazily applied one does (acks.py)."""
        if t_s < self.horizon_s:
            seg.dst = dst
            self.ack_eid += 1
            push(self.near, Entry(t_s, self.ack_eid, seg))

    def run(self, until_s: float) -> None:
        """Process every event before ``until_s`` and leave the clock there."""
        # Typed locals: compiled, the loop then compares floats and calls the model's methods
        # directly instead of through Python's generic protocols.
        queue = self.queue
        near = self.near
        bucket_keys = self.bucket_keys
        n = 0
        while True:
            while bucket_keys and (not queue or queue[0].t_s >= self.window_end_s):
                self._next_window()
            # The earlier head of the two heaps; times decide, and the ids only on a tie.
            if near and (not queue or before(near[0], queue[0])):
                if near[0].t_s >= until_s:
                    break
                n += 1
                entry = pop(near)
                t = entry.t_s
                self.now_s = t
                seg: Seg = entry.ev
                seg.dst.receive(seg)
                continue
            if not queue or queue[0].t_s >= until_s:
                break
            n += 1
            entry = pop(queue)
            t = entry.t_s
            self.now_s = t
            ev = entry.ev
            if isinstance(ev, LazyTimer):
                ev.fired(t)
            elif isinstance(ev, _Call):
                ev.fn(ev.arg)
            else:  # a segment (OneQueueScheduler queues them here too)
                ev.dst.receive(ev)
        self.now_s = until_s
        self.events_run += n

    # -- user-written SimPy processes
    def watch_env(self) -> None:
        """Queue a wake-up at the SimPy environment's next event (``env.peek()``), if that is earlier
        than the one queued; called after anything that may have scheduled a SimPy event."""
        t = self.procs.next_time()
        if t < self.procs_wake_s and t < self.horizon_s:
            self.procs_wake_s = t
            self.push(t, _Call(_wake_procs, self))


def _wake_procs(sched: Scheduler) -> None:
    """A wake-up of the SimPy environment: step it through every event due by now, then queue the
    next wake-up. Each SimPy event it processes counts as an event of the run."""
    at = sched.now_s
    if sched.procs_wake_s == at:
        sched.procs_wake_s = NEVER
    sched.events_run += sched.procs.run_until(at)
    sched.watch_env()


class OneQueueScheduler(Scheduler):
    """The scheduler without the calendar queue (``Shortcuts.calendar_queue`` off): every timer and
    every segment is one entry of the one heap ``queue``, ordered by ``(time, id)``."""

    __slots__ = ()

    def _place(self, t_s: float, eid: int, ev: Any) -> None:
        push(self.queue, Entry(t_s, eid, ev))

    def deliver_at(self, t_s: float, seg: Seg, dst: TcpSocket) -> None:
        if t_s < self.horizon_s:
            seg.dst = dst
            self.eid += 1
            push(self.queue, Entry(t_s, self.eid, seg))

    def deliver_ack_at(self, t_s: float, seg: Seg, dst: TcpSocket) -> None:
        if t_s < self.horizon_s:
            seg.dst = dst
            self.ack_eid += 1
            push(self.queue, Entry(t_s, self.ack_eid, seg))


def make_scheduler(horizon_s: float = math.inf, shortcuts: Shortcuts | None = None) -> Scheduler:
    """The scheduler for ``shortcuts``: a calendar queue, or one plain heap."""
    if shortcuts is not None and not shortcuts.calendar_queue:
        return OneQueueScheduler(horizon_s, shortcuts)
    return Scheduler(horizon_s, shortcuts)


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
        fire_j = wheel_fire_j(self.ticks(now_s), int(delay_ticks) if delay_ticks > 0 else 0)
        return (fire_j - self.phase_j) * self.tick_s

    def elapsed_at_least(self, elapsed: float, limit: float) -> bool:
        """``elapsed >= limit`` in ticks, tolerant of float noise in exact mode."""
        if self.exact:
            return elapsed >= limit - EPS_S
        return elapsed >= limit


class LazyTimer:
    """A deadline with at most one live heap entry, re-checked when it fires.

    Moving the deadline later schedules nothing: the pending entry fires, finds it is early and
    re-queues itself at the new deadline. Clearing it only forgets the deadline. So a timer that
    is pushed back on every packet (idle timers) costs one event per idle period, not per packet.
    The timer is its own heap entry and calls ``fn(owner)`` (an unbound method shared by every
    timer of its kind), so a timer costs one small object and no per-entry allocation.

    "No deadline" and "no entry queued" are ``NEVER`` (infinity) rather than None, so both times
    stay plain floats (compiled, they are compared as C doubles).
    """

    __slots__ = ("sched", "owner", "fn", "due_s", "pending_s", "last")

    def __init__(self, sched: Scheduler, owner: Any, fn: Callable[[Any], None], last: bool = False) -> None:
        self.sched = sched
        self.owner = owner
        self.fn = fn
        #: a keepalive timer: at equal times it runs after everything else (``Scheduler.push_last``)
        self.last = last
        #: the deadline (seconds), or NEVER
        self.due_s = NEVER
        #: the time of this timer's queued heap entry, or NEVER
        self.pending_s = NEVER

    def _enqueue(self, due_s: float) -> None:
        sched = self.sched
        if due_s < sched.horizon_s:
            self.pending_s = due_s
            if self.last:
                sched.push_last(due_s, self)
            else:
                sched.push(due_s, self)

    def set(self, due_s: float) -> None:
        """Fire ``fn(owner)`` at ``due_s`` unless moved or cleared before then."""
        self.due_s = due_s
        if self.pending_s > due_s:
            self._enqueue(due_s)

    def set_as(self, due_s: float, eid: int) -> None:
        """``set``, for a timer the model did not queue when it was armed (a deferred loss probe):
        a new entry carries ``eid``, the id taken when it was armed (``Scheduler.reserve_id``), so at
        equal times it runs where it would have had it been queued then."""
        self.due_s = due_s
        if self.pending_s > due_s and due_s < self.sched.horizon_s:
            self.pending_s = due_s
            self.sched.push_as(due_s, eid, self)

    def clear(self) -> None:
        """Forget the deadline; a pending entry will find nothing to do."""
        self.due_s = NEVER

    def fired(self, at_s: float) -> None:
        """The heap entry for ``at_s`` came up (called by ``Scheduler.run``)."""
        if self.pending_s != at_s:
            return  # an earlier entry replaced this one
        self.pending_s = NEVER
        due = self.due_s
        if due == NEVER:
            return
        if due > at_s:
            self._enqueue(due)
            return
        self.due_s = NEVER
        self.fn(self.owner)


def set_timer(timer: LazyTimer | None, sched: Scheduler, owner: Any, fn: Callable[[Any], None],
              due_s: float) -> LazyTimer | None:
    """``timer.set(due_s)``, making the timer at its first use. No timer is made for a deadline at
    or past the horizon: it could never fire, and most connections of a fleet never need one."""
    if timer is None:
        if due_s >= sched.horizon_s:
            return None
        timer = LazyTimer(sched, owner, fn)
    timer.set(due_s)
    return timer

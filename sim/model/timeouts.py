"""Request timeouts of one fixed length: Envoy's route / stream idle timeout, a client's request
timeout (docs/model.md, "Application timers")."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.model.clock import Scheduler, _Call


class FifoTimeouts:
    """Timeouts of one fixed length, each ending a request that has waited ``duration_s``.

    Their deadlines come due in the order they were set, so one queue and one timer serve every
    connection of a run (``Shortcuts.shared_request_timeouts``): when the timer reaches an entry,
    ``expired(owner)`` runs if the owner is still waiting on the same request
    (``getattr(owner, attr) is token``); a request answered in time is dropped from the queue without
    an event of its own. With the shortcut off, every request has a timer event of its own, which
    makes the same check when it fires.
    """

    __slots__ = ("sched", "entries", "duration_s", "attr", "expired", "shared", "armed", "fire")

    def __init__(self, sched: Scheduler, duration_s: float, attr: str, expired: Callable[[Any], None]) -> None:
        self.sched = sched
        #: (due_s, event id reserved when it was set, owner, token), oldest first
        self.entries: deque[tuple[float, int, Any, Any]] = deque()
        self.duration_s = duration_s
        self.attr = attr
        self.expired = expired
        self.shared: bool = sched.shared_timeouts
        #: an event is queued for the head entry
        self.armed = False
        self.fire = _Call(self._due, None)

    def add(self, now_s: float, owner: Any, token: Any) -> None:
        """``owner`` starts waiting on ``token`` now."""
        due = now_s + self.duration_s
        if not self.shared:
            self.sched.call_at(due, self._one, (owner, token))
            return
        # The head's event carries the id this entry would have had as an event of its own, so a
        # timeout tied with another event at its instant runs in the same order as on the
        # reference engine (a response due at the very instant of the timeout, say).
        self.entries.append((due, self.sched.reserve_eid(), owner, token))
        if not self.armed:
            self._arm()

    def _arm(self) -> None:
        due, eid, _, _ = self.entries[0]
        if due < self.sched.horizon_s:
            self.armed = True
            self.sched.push_as(due, eid, self.fire)

    def _one(self, entry: tuple[Any, Any]) -> None:
        """One request's own timer (the shortcut off)."""
        owner, token = entry
        if getattr(owner, self.attr) is token:
            self.expired(owner)

    def _due(self, _arg: Any = None) -> None:
        """The head entry's instant came: drop the entries answered in time, expire the head if it
        is still waiting, and queue the event of the next one still waiting."""
        self.armed = False
        entries = self.entries
        attr = self.attr
        now = self.sched.now_s
        while entries:
            due, _, owner, token = entries[0]
            if getattr(owner, attr) is not token:
                entries.popleft()  # answered in time (or given up otherwise)
            elif due > now:
                break
            else:
                entries.popleft()
                self.expired(owner)
                break  # the next one waits for its own event (its id orders it among its instant's)
        if entries and not self.armed:
            self._arm()

"""Request timeouts of one fixed length: Envoy's route / stream idle timeout, a client's request
timeout (docs/model.md, "Application timers")."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.model.clock import LazyTimer, Scheduler


class FifoTimeouts:
    """Timeouts of one fixed length, each ending a request that has waited ``duration_s``.

    Their deadlines come due in the order they were set, so one queue and one timer serve every
    connection of a run (``Shortcuts.shared_request_timeouts``): when the timer reaches an entry,
    ``expired(owner)`` runs if the owner is still waiting on the same request
    (``getattr(owner, attr) is token``); a request answered in time is dropped from the queue without
    an event of its own. With the shortcut off, every request has a timer event of its own, which
    makes the same check when it fires.
    """

    __slots__ = ("sched", "timer", "entries", "duration_s", "attr", "expired", "shared")

    def __init__(self, sched: Scheduler, duration_s: float, attr: str, expired: Callable[[Any], None]) -> None:
        self.sched = sched
        self.timer = LazyTimer(sched, self, FifoTimeouts._due)
        self.entries: deque[tuple[float, Any, Any]] = deque()
        self.duration_s = duration_s
        self.attr = attr
        self.expired = expired
        self.shared: bool = sched.shared_timeouts

    def add(self, now_s: float, owner: Any, token: Any) -> None:
        """``owner`` starts waiting on ``token`` now."""
        due = now_s + self.duration_s
        if not self.shared:
            self.sched.call_at(due, self._one, (owner, token))
            return
        self.entries.append((due, owner, token))
        if len(self.entries) == 1:  # otherwise the timer is already due no later than the head
            self.timer.set(due)

    def _one(self, entry: tuple[Any, Any]) -> None:
        """One request's own timer (the shortcut off)."""
        owner, token = entry
        if getattr(owner, self.attr) is token:
            self.expired(owner)

    def _due(self) -> None:
        entries = self.entries
        now = self.sched.now_s
        attr = self.attr
        while entries:
            due, owner, token = entries[0]
            if getattr(owner, attr) is not token:
                entries.popleft()  # answered in time (or given up otherwise)
            elif due > now:
                self.timer.set(due)
                return
            else:
                entries.popleft()
                self.expired(owner)

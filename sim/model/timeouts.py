"""Request timeouts of one fixed length: Envoy's route / stream idle timeout, a client's request
timeout (docs/model.md, "Application timers")."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from sim.model.clock import Scheduler, _Call


class FifoTimeouts:
    """Timeouts of one fixed length, each ending a request that has waited ``duration_s``.

    Their deadlines come due in the order they were set, so one queue serves every connection of a
    run (``Shortcuts.shared_request_timeouts``), with one heap entry at a time, for the first request
    still waiting: when it comes up, ``expired(owner)`` runs if the owner is still waiting on the same
    request (``getattr(owner, attr) is token``); a request answered in time is dropped from the queue
    without an event of its own. With the shortcut off, every request has a timer event of its own,
    which makes the same check when it fires.

    Each request takes its heap id when it is set, in both modes, and the one entry queued for it
    carries that id (``Scheduler.push_as``). So at equal times a timeout runs exactly where its own
    timer would: after what was queued before the request, before what came after, and one at a
    time, whatever else is waiting in the queue (other slots' requests, other chunks).
    """

    __slots__ = ("sched", "entries", "duration_s", "attr", "expired", "shared", "armed_eid", "busy", "call")

    def __init__(self, sched: Scheduler, duration_s: float, attr: str, expired: Callable[[Any], None]) -> None:
        self.sched = sched
        self.entries: deque[tuple[float, Any, Any, int]] = deque()
        self.duration_s = duration_s
        self.attr = attr
        self.expired = expired
        self.shared: bool = sched.shared_timeouts
        #: the id of the queued entry (the head it was queued for); -1: none
        self.armed_eid = -1
        #: in ``_due``: an ``add`` made by ``expired`` waits for ``_due`` to queue the head
        self.busy = False
        self.call = _Call(FifoTimeouts._due, self)

    def add(self, now_s: float, owner: Any, token: Any) -> None:
        """``owner`` starts waiting on ``token`` now."""
        due = now_s + self.duration_s
        eid = self.sched.reserve_id()
        if not self.shared:
            if due < self.sched.horizon_s:
                self.sched.push_as(due, eid, _Call(self._one, (owner, token)))
            return
        self.entries.append((due, owner, token, eid))
        if len(self.entries) == 1 and not self.busy:  # otherwise an entry is queued for an earlier head
            self._arm(due, eid)

    def _arm(self, due_s: float, eid: int) -> None:
        self.armed_eid = eid
        if due_s < self.sched.horizon_s:
            self.sched.push_as(due_s, eid, self.call)

    def _one(self, entry: tuple[Any, Any]) -> None:
        """One request's own timer (the shortcut off)."""
        owner, token = entry
        if getattr(owner, self.attr) is token:
            self.expired(owner)

    def _due(self) -> None:
        """The entry queued for the head came up: expire that request if it still waits, then queue
        the next one still waiting (at its own id, even when it is due now too)."""
        entries = self.entries
        now = self.sched.now_s
        attr = self.attr
        armed = self.armed_eid
        self.armed_eid = -1
        self.busy = True
        try:
            while entries:
                due, owner, token, eid = entries[0]
                if getattr(owner, attr) is not token:
                    entries.popleft()  # answered in time (or given up otherwise)
                elif eid == armed and due <= now:
                    entries.popleft()
                    armed = -1
                    self.expired(owner)
                else:
                    break
        finally:
            self.busy = False
        if entries:
            self._arm(entries[0][0], entries[0][3])

"""A NAT device's source-port budgets (docs/model.md, "Port budgets").

A flow takes a port at its first SYN and holds it until the device forgets the flow: at its idle
expiry (the port is free at the expiry's true time), or ``reuse_s`` after its close (FIN both ways
or an RST: TIME_WAIT and the vendors' reuse timers). One budget for the whole fleet (``per:
destination``: every flow goes to the one destination), or one per client instance.

Nothing is scheduled to free a port: ports are only asked for by a SYN, so a budget that looks full
first gives back the ports whose hold ran out by then (``free``), and its owner first expires the
flows whose idle timer ran out unseen (``Middlebox._reap``). The true times are kept in
``intervals`` for the figures after the run (sim.metrics.capacity).
"""

from __future__ import annotations

import heapq

from sim.model.clock import EPS_S


class PortBudget:
    """The budgets of one device, ``limit`` ports each, keyed by budget (a client instance, or 0)."""

    __slots__ = ("limit", "reuse_s", "per_instance", "in_use", "held", "intervals", "seq")

    def __init__(self, limit: int, per_instance: bool, reuse_s: float) -> None:
        self.limit = limit
        self.reuse_s = reuse_s
        self.per_instance = per_instance
        #: ports counted taken, per budget: held by a flow, or by a closed one until its reuse runs out
        #: (given back lazily, by ``free``)
        self.in_use: dict[int, int] = {}
        #: (free_at_s, sequence, budget) of the ports of closed flows still held for reuse
        self.held: list[tuple[float, int, int]] = []
        #: (taken_s, freed_s, budget) of every port taken: the true holds, for the figures
        self.intervals: list[tuple[float, float, int]] = []
        self.seq = 0

    def budget_of(self, instance: int) -> int:
        """The budget a flow from client instance ``instance`` takes its port from."""
        return instance if self.per_instance else 0

    def has_free(self, budget: int) -> bool:
        """A port is free in ``budget`` by the count kept (holds that ran out not yet given back)."""
        return self.in_use.get(budget, 0) < self.limit

    def free(self, budget: int, t_s: float) -> bool:
        """Is a port free in ``budget`` at ``t_s``? Gives back first every port (of any budget)
        whose reuse hold ran out by then."""
        held = self.held
        in_use = self.in_use
        while held and held[0][0] <= t_s + EPS_S:
            _, _, b = heapq.heappop(held)
            in_use[b] -= 1
        return in_use.get(budget, 0) < self.limit

    def take(self, budget: int) -> None:
        self.in_use[budget] = self.in_use.get(budget, 0) + 1

    def give_back(self, budget: int, taken_s: float, ended_s: float, closed: bool) -> None:
        """The device forgets a flow at ``ended_s``: its port is free then, or, after a close,
        ``reuse_s`` later."""
        hold_s = self.reuse_s if closed else 0.0
        self.intervals.append((taken_s, ended_s + hold_s, budget))
        if hold_s > 0:
            self.seq += 1
            heapq.heappush(self.held, (ended_s + hold_s, self.seq, budget))
        else:
            self.in_use[budget] -= 1

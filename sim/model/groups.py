"""Which client slots can be simulated apart from each other, and in which groups.

Slots that share nothing (no limited table, no port budget, no pool) are independent: any subset of
the fleet gives exactly the rows it gives in the full run (chunks, pieces over workers, one slot
again for its trace, a sample). Slots that compete for a limit are not, and the fleet runs whole.
Envoy's upstream pools sit in between: a pool belongs to one worker, and the worker serving a slot
is ``slot % concurrency`` (``World.pool_for``), so the slots of different workers share nothing and
each worker's slots can run as a world of their own.
"""

from __future__ import annotations

from collections.abc import Sequence

from sim.spec import WorldSpec


def shares_limits(spec: WorldSpec) -> bool:
    """Do slots compete for a limit? A device with a flow limit (``max_flows``), or a port budget
    that several slots draw on. A per-instance budget on the client's leg with one machine per slot
    (and no terminating LB, whose back leg is one opener) is each slot's own."""
    own = spec.client.instances in (0,) or spec.client.instances >= spec.connections
    alone = own and not any(m.terminating for m in spec.lb)
    return any(m.max_flows is not None for m in spec.lb + spec.upstream_lb) or any(
        m.ports_limit is not None for m in spec.upstream_lb) or any(
        m.ports_limit is not None and not (alone and m.ports_per == "client_instance") for m in spec.lb)


def shares_upstream_pools(spec: WorldSpec) -> bool:
    """Does Envoy pool its upstream connections (an HTTP listener; a tcp_proxy one does not)?"""
    return spec.envoy is not None and not spec.envoy.tcp_proxy


def shares_flow_tables(spec: WorldSpec) -> bool:
    """Do the slots of ``spec`` share state, a limit or Envoy's pools? Then no slot can be simulated
    on its own; ``worker_groups`` says which groups still can."""
    return shares_limits(spec) or shares_upstream_pools(spec)


def pool_count(spec: WorldSpec) -> int:
    """Envoy's workers over all its instances, each with a pool (``World.pool_for``): slot ``i`` is
    served by worker ``i % pool_count``; 0 without Envoy."""
    return spec.envoy.concurrency * spec.envoy.replicas if spec.envoy is not None else 0


def worker_groups(spec: WorldSpec, slots: Sequence[int]) -> list[list[int]] | None:
    """``slots`` cut into the groups of Envoy's workers, when the pools are all the slots share:
    each group is independent of the others (its own pool) but not within itself. None when the
    slots cannot be grouped: they share a limit (the fleet runs whole) or nothing at all."""
    if shares_limits(spec) or not shares_upstream_pools(spec):
        return None
    workers = pool_count(spec)
    groups: dict[int, list[int]] = {}
    for s in slots:
        groups.setdefault(s % workers, []).append(s)
    return [groups[k] for k in sorted(groups)]


def packed(groups: list[list[int]], most: int) -> list[list[int]]:
    """Whole ``groups`` (of slots that must run together) packed, in order, into pieces of at most
    ``most`` slots (a larger group is a piece of its own), each sorted: fewer worlds to build when the
    groups are small (many Envoy instances), the same records."""
    out: list[list[int]] = []
    piece: list[int] = []
    for g in groups:
        if piece and len(piece) + len(g) > most:
            out.append(sorted(piece))
            piece = []
        piece.extend(g)
    if piece:
        out.append(sorted(piece))
    return out

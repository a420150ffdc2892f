"""The pure core: one replication of a validated scenario, as records."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sim.config.resolve import world_spec
from sim.config.schema import Scenario
from sim.model.groups import worker_groups
from sim.model.scenario import Records, run_world, shares_flow_tables
from sim.spec import Shortcuts


def run_one(sc: Scenario, seed: int, trace_conn: int | None = None, slots: Iterable[int] | None = None,
            chunk_slots: int | None = None, shortcuts: Shortcuts | None = None) -> Records:
    """Simulate one replication of ``sc`` (a validated Scenario) with ``seed``. Pure: no files, no CLI,
    no executors. ``trace_conn``: record every packet of that connection id. ``slots``: only these
    client slots (slots are independent; default: the fleet, or its sample with ``fleet.sample``).
    ``chunk_slots``: simulate that many slots at a time (None: the model's default; 0: the whole
    fleet at once). ``shortcuts``: the engine's work-saving
    shortcuts (default all on; ``Shortcuts.none()`` is the reference engine)."""
    kwargs = {} if chunk_slots is None else {"chunk_slots": chunk_slots}
    if slots is None and sc.fleet is not None:  # a sampled fleet: its sample (sim/execution/sampling.py)
        from sim.execution.sampling import fleet_slots

        slots = fleet_slots(sc, seed)
    return run_world(world_spec(sc, shortcuts), seed, trace_conn, slots, **kwargs)


def slots_independent(sc: Scenario) -> bool:
    """Can the fleet's slots be simulated apart (in pieces, over workers, one slot again for its
    trace) and give the same records? Not when a device has a flow limit or a port budget that
    several slots draw on: the slots compete for its table (``lb.max_flows``) or its ports
    (``lb.ports``)."""
    return not shares_flow_tables(world_spec(sc))


def slot_groups(sc: Scenario, slots: Sequence[int]) -> list[list[int]] | None:
    """``slots`` cut into groups that share no state with each other, when Envoy's upstream pools are
    all the fleet's slots share: each Envoy worker's slots (``worker_groups``), which give exactly
    their rows of the whole fleet's run when simulated apart. None when the slots are independent
    (any subset will do: ``slots_independent``) or share a limit (only the whole fleet will do)."""
    return worker_groups(world_spec(sc), slots)


def slots_with(sc: Scenario, slot: int) -> list[int] | None:
    """The slots that must be simulated with ``slot`` for its rows to be those of the whole fleet's
    run: itself when slots are independent, its Envoy worker's slots when the pools are all they
    share, None (the whole fleet) when they share a limit."""
    if slots_independent(sc):
        return [slot]
    groups = slot_groups(sc, range(sc.connections))
    if groups is None:
        return None
    return next(g for g in groups if slot in g)

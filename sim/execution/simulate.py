"""The pure core: one replication of a validated scenario, as records."""

from __future__ import annotations

from collections.abc import Iterable

from sim.model import scenario as _model


def run_one(sc, seed: int, trace_conn: int | None = None, slots: Iterable[int] | None = None,
            chunk_slots: int | None = None):
    """Simulate one replication of ``sc`` (a validated Scenario) with ``seed``. Pure: no files, no CLI,
    no executors. ``trace_conn``: record every packet of that connection id. ``slots``: only these
    client slots (slots are independent). ``chunk_slots``: simulate that many slots at a time (None:
    the model's default; 0: the whole fleet at once)."""
    kwargs = {} if chunk_slots is None else {"chunk_slots": chunk_slots}
    return _model.run_one(sc, seed, trace_conn, slots, **kwargs)

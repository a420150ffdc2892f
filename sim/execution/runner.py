"""Run a scenario's replications and summarise them (shared by ``run``, sweeps and notebooks)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass

import pandas as pd

from sim.config.fleet import is_sampled
from sim.config.schema import Scenario
from sim.execution import run_one
from sim.execution.sampling import fleet_slots, run_sampled, sample_size, sampling_clusters, sampling_strata
from sim.execution.seeds import replication_seed
from sim.execution.simulate import slot_groups, slots_independent
from sim.metrics.fleet import scale_to_fleet
from sim.metrics.summary import combine, summarize_one
from sim.model.groups import packed
from sim.model.scenario import Records, merge
from sim.spec import Shortcuts

#: a fleet larger than this is simulated a piece of this many slots at a time, so that progress can
#: be reported and the pieces spread over ``--workers`` processes (slots are independent: the same
#: records, whatever the split; tests/test_scenarios.py)
PIECE_SLOTS = 10_000


@dataclass
class ScenarioResult:
    summary: dict
    records: list[Records]
    #: ``{(leg, side column): Counter of outcomes}`` of a run that kept no records (``run --executor
    #: dask``: sim/execution/dask_run.py); None: count them from ``records``
    leg_outcomes: dict | None = None

    def outcomes_by_leg(self) -> dict[tuple[str, str], dict[str, int]]:
        """Every leg's outcome counts per side (``client_outcome``, ``server_outcome``), the most
        frequent first."""
        if self.leg_outcomes is not None:
            return {k: dict(c.most_common()) for k, c in self.leg_outcomes.items()}
        df = self.connections_frame()
        return {(leg, side): dict(rows[side].value_counts()) for leg, rows in df.groupby("leg", sort=False)
                for side in ("client_outcome", "server_outcome")}

    def connections_frame(self) -> pd.DataFrame:
        """Every connection row of every replication, with a ``replication`` column."""
        frames = []
        for rep, rec in enumerate(self.records):
            df = pd.DataFrame(rec.columns)
            df.insert(0, "replication", rep)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)


def slot_pieces(slots: Sequence[int], workers: int, most: int | None = None) -> list[Sequence[int]]:
    """Contiguous runs of ``slots`` (the fleet's, or its sample's): one when they are few and one
    worker runs them, else pieces of at most ``most`` slots (default PIECE_SLOTS), at least one per
    worker."""
    most = PIECE_SLOTS if most is None else most
    n = len(slots)
    if workers <= 1 and n <= most:
        return [slots]
    size = max(1, min(most, math.ceil(n / max(workers, 1))))
    return [slots[a:a + size] for a in range(0, n, size)]


def fleet_pieces(sc: Scenario, slots: Sequence[int], workers: int, most: int | None = None) -> list[Sequence[int]]:
    """``slots`` cut into pieces that can be simulated apart and merged into exactly the whole
    run's records: ``slot_pieces`` when the slots are independent; whole Envoy workers' slots when
    the upstream pools are all they share, packed into pieces of at most ``most`` slots (one
    worker's may be more), at least one per process; else one piece, the whole fleet."""
    if slots_independent(sc):
        return slot_pieces(slots, workers, most)
    groups = slot_groups(sc, slots)
    most = PIECE_SLOTS if most is None else most
    if groups is None or (workers <= 1 and len(slots) <= most):
        return [slots]
    return list(packed(groups, max(1, min(most, math.ceil(len(slots) / max(workers, 1))))))


def _run_piece(args: tuple) -> Records:
    sc, seed, slots, shortcuts = args
    return run_one(sc, seed, slots=slots, shortcuts=shortcuts)


def _run_strided(args: tuple) -> Records:
    sc, seed, trace_conn, slots = args
    return run_one(sc, seed, trace_conn, slots)


def run_split(sc: Scenario, seed: int, workers: int, trace_conn: int | None = None) -> Records:
    """``run_one`` with the fleet's slots split over ``workers`` processes, every ``workers``-th slot
    to one process, or each Envoy worker's slots to one when the upstream pools are what slots share
    (bench/core.py --workers); the same records."""
    slots = fleet_slots(sc, seed)
    if workers <= 1 or len(slots) < 2 * workers:
        return run_one(sc, seed, trace_conn)
    if slots_independent(sc):
        chunks: list[Sequence[int]] = [slots[i::workers] for i in range(workers)]
    else:  # whole Envoy workers' slots when their pools are all they share (else the whole fleet)
        chunks = fleet_pieces(sc, slots, workers, math.ceil(len(slots) / workers))
        if len(chunks) < 2:
            return run_one(sc, seed, trace_conn)
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_run_strided, [(sc, seed, trace_conn, c) for c in chunks]))
    rec = merge(parts)
    rec.run["wall_s"] = time.perf_counter() - t0
    return rec


def run_replication(sc: Scenario, seed: int, workers: int = 1, bar=None,
                    shortcuts: Shortcuts | None = None) -> Records:
    """One replication, its fleet in pieces over ``workers`` processes (the same records as
    ``run_one``); ``bar``: a progress reporter, advanced by the slots of each finished piece;
    ``shortcuts``: the engine's (``Shortcuts.none()``: the reference engine)."""
    slots = fleet_slots(sc, seed)
    pieces = fleet_pieces(sc, slots, workers)
    if len(pieces) == 1:
        rec = run_one(sc, seed, shortcuts=shortcuts)
        if bar is not None:
            bar.update(len(slots))
        return rec
    from sim.execution.executors import run_all

    t0 = time.perf_counter()
    parts = []
    executor = "process" if workers > 1 else "serial"
    with closing(run_all(_run_piece, [(sc, seed, p, shortcuts) for p in pieces], executor, workers)) as results:
        for (_, _, slots, _), rec, error in results:
            if error:
                raise RuntimeError(f"slots {slots[0]}..{slots[-1]}: {error}")
            parts.append(rec)
            if bar is not None:
                bar.update(len(slots))
    rec = merge(parts)
    rec.run["wall_s"] = time.perf_counter() - t0
    return rec


def run_scenario(sc: Scenario, keep_records: bool = True, workers: int = 1, quiet: bool = True,
                 shortcuts: Shortcuts | None = None) -> ScenarioResult:
    """All replications of ``sc`` (seeds derived from ``sc.seed``), combined per DESIGN §3.
    ``workers`` > 1 splits each replication's fleet over that many processes (same results).
    Unless ``quiet``, a fleet of more than PIECE_SLOTS slots reports its progress on stderr."""
    from sim.execution.progress import progress

    simulated = sample_size(sc)
    total = simulated * sc.replications
    bar = progress(total, quiet=quiet or simulated <= PIECE_SLOTS, label="run", unit="slot")
    per_rep, runs, recs = [], [], []
    sampled: list[tuple[dict, Sequence[int]]] = []
    batches: list[dict] = []
    try:
        for rep in range(sc.replications):
            seed = replication_seed(sc.seed, rep)
            if sc.fleet is not None and is_sampled(sc.fleet):
                rec, slots, parts = run_sampled(sc, seed, bar, shortcuts)
                sampled.append((rec.columns, slots))
                batches += parts
            else:
                rec = run_replication(sc, seed, workers, bar, shortcuts)
            per_rep.append(summarize_one(rec, sc.duration))
            runs.append(rec.run)
            if keep_records:
                recs.append(rec)
    finally:
        if bar is not None:
            bar.close()
    summary = combine(per_rep, runs)
    if sampled:
        summary = scale_to_fleet(summary, sampled, batches, sc.connections, sc.duration, sc.seed,
                                 sampling_clusters(sc), sampling_strata(sc), len(sc.classes()))
    return ScenarioResult(summary=summary, records=recs)

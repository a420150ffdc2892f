"""Run a scenario's replications and summarise them (shared by ``run``, sweeps and notebooks)."""

from __future__ import annotations

import math
import time
from contextlib import closing
from dataclasses import dataclass

import pandas as pd

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.execution.seeds import replication_seed
from sim.execution.simulate import slots_independent
from sim.metrics.summary import combine, summarize_one
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

    def connections_frame(self) -> pd.DataFrame:
        """Every connection row of every replication, with a ``replication`` column."""
        frames = []
        for rep, rec in enumerate(self.records):
            df = pd.DataFrame(rec.columns)
            df.insert(0, "replication", rep)
            frames.append(df)
        return pd.concat(frames, ignore_index=True)


def slot_pieces(connections: int, workers: int) -> list[range]:
    """Contiguous slot ranges: one when the fleet is small and one worker runs it, else pieces of at
    most PIECE_SLOTS, at least one per worker."""
    if workers <= 1 and connections <= PIECE_SLOTS:
        return [range(connections)]
    size = max(1, min(PIECE_SLOTS, math.ceil(connections / max(workers, 1))))
    return [range(a, min(a + size, connections)) for a in range(0, connections, size)]


def _run_piece(args: tuple) -> Records:
    sc, seed, slots, shortcuts = args
    return run_one(sc, seed, slots=slots, shortcuts=shortcuts)


def _run_strided(args: tuple) -> Records:
    sc, seed, trace_conn, slots = args
    return run_one(sc, seed, trace_conn, slots)


def run_split(sc: Scenario, seed: int, workers: int, trace_conn: int | None = None) -> Records:
    """``run_one`` with the fleet's slots split over ``workers`` processes, every ``workers``-th slot
    to one process (bench/core.py --workers); the same records."""
    if workers <= 1 or sc.connections < 2 * workers or not slots_independent(sc):
        return run_one(sc, seed, trace_conn)
    from concurrent.futures import ProcessPoolExecutor

    t0 = time.perf_counter()
    chunks = [range(i, sc.connections, workers) for i in range(workers)]
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
    pieces = slot_pieces(sc.connections, workers) if slots_independent(sc) else [range(sc.connections)]
    if len(pieces) == 1:
        rec = run_one(sc, seed, shortcuts=shortcuts)
        if bar is not None:
            bar.update(sc.connections)
        return rec
    from sim.execution.executors import run_all

    t0 = time.perf_counter()
    parts = []
    executor = "process" if workers > 1 else "serial"
    with closing(run_all(_run_piece, [(sc, seed, p, shortcuts) for p in pieces], executor, workers)) as results:
        for (_, _, slots, _), rec, error in results:
            if error:
                raise RuntimeError(f"slots {slots.start}..{slots.stop - 1}: {error}")
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

    total = sc.connections * sc.replications
    bar = progress(total, quiet=quiet or sc.connections <= PIECE_SLOTS, label="run", unit="slot")
    per_rep, runs, recs = [], [], []
    try:
        for rep in range(sc.replications):
            rec = run_replication(sc, replication_seed(sc.seed, rep), workers, bar, shortcuts)
            per_rep.append(summarize_one(rec, sc.duration))
            runs.append(rec.run)
            if keep_records:
                recs.append(rec)
    finally:
        if bar is not None:
            bar.close()
    return ScenarioResult(summary=combine(per_rep, runs), records=recs)

"""``run --executor dask``: one fleet's slots spread over a Dask cluster, with bounded memory.

Each replication's slots are cut into chunks of at most PIECE_SLOTS (sim.execution.runner.fleet_pieces);
a worker simulates one chunk (``run_one`` with those slots: the same records as in the whole fleet,
tests/test_dask_run.py) and hands back, instead of its records,
* with ``--out``, the chunk's rows as Parquet bytes, which the client writes at once, atomically, as
  ``parts/r<replication>-c<chunk>.conns.parquet`` (so a remote cluster needs no shared disk, and an
  interrupted run keeps every finished chunk);
* its rows' totals (sim.metrics.totals.RowTotals: exact, mergeable), per-leg outcome counts, its
  counters and its series, whose flow intervals are compacted to arrays (16 bytes a flow).
The client merges those as they arrive; no worker holds more than one chunk's rows and the client
never holds rows at all. At the end the parts are streamed into ``connections.parquet`` one at a time
and removed. What the client keeps grows with the fleet only as the flow peak and the median detection
time need: two float64 per flow and middlebox, one per detection time and two per zombie.

Only a fleet whose slots are independent is split so (``slots_independent``). When Envoy's upstream
pools are all the slots share, a chunk is one Envoy worker's slots, however many (``fleet_pieces``:
the workers' pools are apart, so each worker's slots give exactly their rows of the whole run). One
sharing a flow table, a port budget or a single worker's pool is refused with one line: it must be
simulated whole, in one process (``--executor process`` or ``serial``). A sampled fleet is refused
too: a sample is small by design.
"""

from __future__ import annotations

import io
import sys
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sim.config.fleet import is_sampled
from sim.config.schema import Scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.execution.executors import available_cores, run_all
from sim.execution.runner import PIECE_SLOTS, ScenarioResult, fleet_pieces
from sim.execution.sampling import fleet_slots
from sim.execution.seeds import replication_seed
from sim.execution.simulate import slot_groups, slots_independent
from sim.metrics.capacity import pairs
from sim.metrics.summary import combine, summary_from
from sim.metrics.totals import RowTotals
from sim.model.scenario import Records, merge
from sim.output import atomic_write
from sim.spec import Shortcuts

#: the sides whose outcomes ``run`` prints per leg
SIDES = ("client_outcome", "server_outcome")


@dataclass(frozen=True)
class Chunk:
    """One task: these ``slots`` of replication ``replication`` (seed ``seed``)."""

    sc: Scenario
    seed: int
    replication: int
    index: int
    slots: Sequence[int]
    shortcuts: Shortcuts | None
    write: bool  # hand back the rows as Parquet bytes (run --out)


@dataclass
class ChunkResult:
    totals: RowTotals
    rec: Records  # no columns, no trace; each device's intervals an array
    leg_outcomes: dict[tuple[str, str], Counter]
    parquet: bytes | None


def leg_outcome_counts(columns: dict) -> dict[tuple[str, str], Counter]:
    """``{(leg, side column): Counter of outcomes}``: what ``run`` prints per leg and side."""
    out: dict[tuple[str, str], Counter] = {}
    for side in SIDES:
        for leg, outcome in zip(columns["leg"], columns[side], strict=True):
            out.setdefault((leg, side), Counter())[outcome] += 1
    return out


def run_chunk(chunk: Chunk) -> ChunkResult:
    """Simulate one chunk on a worker; its rows leave as Parquet bytes and totals, never as objects."""
    rec = run_one(chunk.sc, chunk.seed, slots=chunk.slots, shortcuts=chunk.shortcuts)
    parquet = None
    if chunk.write:
        frame = pd.DataFrame(rec.columns)
        frame.insert(0, "replication", chunk.replication)
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False, engine="pyarrow")
        parquet = buf.getvalue()
        del frame
    totals = RowTotals().add(rec.columns)
    legs = leg_outcome_counts(rec.columns)
    rec.columns, rec.flow_intervals, rec.trace = {}, [], None
    for dev in rec.series["devices"]:
        for _, part in _flow_parts(dev):
            part["intervals"] = pairs(part["intervals"])
        dev["port_intervals"] = np.array(dev["port_intervals"], dtype=float).reshape(-1, 3)
    return ChunkResult(totals, rec, legs, parquet)


def _flow_parts(dev: dict) -> list[tuple[str, dict]]:
    """A device record and each traffic class's part of it (``classes``): each holds its own flows."""
    return [("", dev), *dev.get("classes", {}).items()]


@dataclass
class _Replication:
    """One replication's chunks, merged as they arrive."""

    totals: RowTotals = field(default_factory=RowTotals)
    rec: Records | None = None
    #: each device's flows (and each class's at it: (device, class name or ""))
    flows: dict[tuple[int, str], list[np.ndarray]] = field(default_factory=dict)
    ports: list[list[np.ndarray]] = field(default_factory=list)
    legs: dict[tuple[str, str], Counter] = field(default_factory=dict)

    def add(self, res: ChunkResult) -> None:
        self.totals.merge(res.totals)
        for key, counts in res.leg_outcomes.items():
            self.legs.setdefault(key, Counter()).update(counts)
        devs = res.rec.series["devices"]
        if not self.ports:
            self.ports = [[] for _ in devs]
        for i, dev in enumerate(devs):  # the arrays are joined once, at the end
            for name, part in _flow_parts(dev):
                self.flows.setdefault((i, name), []).append(part.pop("intervals"))
                part["intervals"] = []
            self.ports[i].append(dev.pop("port_intervals"))
            dev["port_intervals"] = []
        self.rec = res.rec if self.rec is None else merge([self.rec, res.rec])

    def summary(self, duration_s: float) -> tuple[dict, dict]:
        assert self.rec is not None
        for i, dev in enumerate(self.rec.series["devices"]):
            for name, part in _flow_parts(dev):
                part["intervals"] = np.concatenate(self.flows[(i, name)])
            dev["port_intervals"] = np.concatenate(self.ports[i])
        return summary_from(self.totals, self.rec.counters, self.rec.series, duration_s), self.rec.run


def check_splittable(sc: Scenario) -> None:
    """Refuse, with one line, a fleet that cannot be split over a cluster and stay exact."""
    if sc.fleet is not None and is_sampled(sc.fleet):
        raise ConfigError("a sampled fleet is simulated in one process (it is small by design); the dask "
                          "executor is for exact runs of the whole fleet", file="<command line>", key="--executor",
                          allowed="--executor process or serial with fleet.sample, or no fleet.sample")
    if not slots_independent(sc) and len(slot_groups(sc, range(min(sc.connections, 2))) or ()) < 2:
        raise ConfigError("the fleet's slots share state (a flow table with max_flows, a port budget that several "
                          "slots draw on, or the upstream pool of a single Envoy worker), so they cannot be split "
                          "over a cluster and stay exact; such a fleet is simulated whole, in one process",
                          file="<command line>", key="--executor",
                          allowed="--executor process or serial for this config; dask for fleets without shared "
                          "state (e.g. envoy.listener.protocol: tcp_proxy, no max_flows) or whose slots share only "
                          "Envoy's upstream pools over 2 or more Envoy workers (envoy.concurrency × envoy.replicas; "
                          "a chunk is then whole workers' slots)")


def part_name(replication: int, index: int) -> str:
    return f"r{replication:03d}-c{index:05d}.conns.parquet"


def run_on_dask(sc: Scenario, parts: Path | None = None, workers: int | None = None, scheduler: str | None = None,
                quiet: bool = True, shortcuts: Shortcuts | None = None,
                chunk_slots: int | None = None) -> ScenarioResult:
    """Every replication of ``sc`` over a Dask cluster (``scheduler``'s, or a LocalCluster of
    ``workers`` processes, default the cores), combined per DESIGN §3: the summary ``run_scenario``
    gives. ``parts``: write each chunk's rows there as it arrives (None: keep no rows). A chunk has at
    most ``chunk_slots`` slots (default PIECE_SLOTS), and there are at least two per worker, except
    that a pooled fleet's chunk is one Envoy worker's slots (``fleet_pieces``). The
    result holds no records; its ``leg_outcomes`` has the per-leg outcome counts."""
    from sim.execution.progress import progress

    check_splittable(sc)
    if parts is not None:  # chunks of an earlier, interrupted run must not be merged into this one
        parts.mkdir(parents=True, exist_ok=True)
        for f in part_files(parts):
            f.unlink()
    chunks = []
    for rep in range(sc.replications):
        seed = replication_seed(sc.seed, rep)
        for k, slots in enumerate(fleet_pieces(sc, fleet_slots(sc, seed), 2 * (workers or available_cores()),
                                               chunk_slots)):
            chunks.append(Chunk(sc, seed, rep, k, slots, shortcuts, parts is not None))
    reps = [_Replication() for _ in range(sc.replications)]
    bar = progress(sc.connections * sc.replications, quiet=quiet or sc.connections <= PIECE_SLOTS, label="run",
                   unit="slot")
    done = 0
    t0 = time.perf_counter()
    try:
        with closing(run_all(run_chunk, chunks, "dask", workers, scheduler)) as results:
            for chunk, res, error in results:
                if error:
                    raise RuntimeError(f"replication {chunk.replication}, slots {chunk.slots[0]}.."
                                       f"{chunk.slots[-1]}: {error}")
                if parts is not None and res.parquet is not None:
                    atomic_write(parts / part_name(chunk.replication, chunk.index), res.parquet)
                    res.parquet = None
                reps[chunk.replication].add(res)
                done += 1
                if bar is not None:
                    bar.update(len(chunk.slots))
    except KeyboardInterrupt:
        if parts is not None:
            print(f"interrupted: {done} of {len(chunks)} chunks finished; their rows are in {parts}/",
                  file=sys.stderr)
        raise
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    per_rep, runs = [], []
    legs: dict[tuple[str, str], Counter] = {}
    for r in reps:
        s, run = r.summary(sc.duration)
        per_rep.append(s)
        runs.append({**run, "wall_s": wall / sc.replications})
        for key, counts in r.legs.items():
            legs.setdefault(key, Counter()).update(counts)
    return ScenarioResult(summary=combine(per_rep, runs), records=[], leg_outcomes=legs)


def part_files(parts: Path) -> list[Path]:
    """The chunk files of a run's ``parts/`` folder, in replication and slot order."""
    return sorted(parts.glob("r[0-9][0-9][0-9]-c[0-9][0-9][0-9][0-9][0-9].conns.parquet"))

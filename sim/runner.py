"""Run a scenario's replications and summarise them (shared by ``run``, sweeps and notebooks)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sim.config.schema import Scenario
from sim.model.scenario import Records, run_split
from sim.report.summary import combine, summarize_one
from sim.sweep.seeds import replication_seed


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


def run_scenario(sc: Scenario, keep_records: bool = True, workers: int = 1) -> ScenarioResult:
    """All replications of ``sc`` (seeds derived from ``sc.seed``), combined per DESIGN §3.
    ``workers`` > 1 splits each replication's fleet over that many processes (same results)."""
    per_rep, runs, recs = [], [], []
    for rep in range(sc.replications):
        rec = run_split(sc, replication_seed(sc.seed, rep), workers)
        per_rep.append(summarize_one(rec, sc.duration))
        runs.append(rec.run)
        if keep_records:
            recs.append(rec)
    return ScenarioResult(summary=combine(per_rep, runs), records=recs)

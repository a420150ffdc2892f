"""Sampled fleets (``fleet.sample``, docs/model.md#sampled-fleets): which slots are simulated, and when a
sample would be wrong.

Every slot has its own random streams and connection ids, so a slot simulates exactly as it would in
the whole fleet (tests/test_sampling.py). A seeded uniform sample of slot ids is therefore, exactly,
those slots of the full run; totals scale to the fleet (sim.metrics.fleet). That holds only while the
slots share no state: slots competing for a limited flow table are not independent, and a sample of
them would be silently wrong, so it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.config.fleet import is_sampled
from sim.config.schema import Scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.execution.simulate import slots_independent
from sim.metrics.fleet import batch_count, peak_profile
from sim.metrics.summary import summarize_one
from sim.model.scenario import Records, merge
from sim.spec import Shortcuts

#: the spawn key of the sample's random stream, apart from every replication's model streams
SAMPLE_STREAM = 0x5A3F1E


def check_sampling(sc: Scenario) -> None:
    """Refuse a sample where slots share a limit (one line, exit 2)."""
    if is_sampled(sc.fleet) and not slots_independent(sc):
        raise ConfigError("the fleet's slots share a limit (a flow table with max_flows, or a port budget that "
                          "several slots draw on), so a sample of them would not behave as they do in the whole "
                          "fleet; sampling is refused rather than silently wrong", key="fleet.sample",
                          allowed="no sample (the fleet simulated whole), or no shared limit")


def fleet_slots(sc: Scenario, seed: int) -> Sequence[int]:
    """The slots one replication simulates: all of them, or a uniform sample without replacement
    drawn from ``seed`` (the replication's seed, so each replication samples afresh), sorted."""
    if sc.fleet is None or not is_sampled(sc.fleet):
        return range(sc.connections)
    check_sampling(sc)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SAMPLE_STREAM,)))
    ids = rng.choice(sc.connections, size=sc.fleet.sample_size(), replace=False)
    ids.sort()
    return ids.tolist()


def sample_fraction(sc: Scenario) -> float:
    """Simulated slots over the fleet's slots (1.0 without a sample)."""
    return 1.0 if sc.fleet is None else sc.fleet.sample_size() / sc.connections


def run_sampled(sc: Scenario, seed: int, bar=None, shortcuts: Shortcuts | None = None,
                slots: Sequence[int] | None = None) -> tuple[Records, Sequence[int], list[dict]]:
    """One replication of a sampled fleet: its sample simulated in interleaved batches
    (sim.metrics.fleet.batch_count), whose summaries give the intervals of the figures the model
    counts per device. Returns the merged records (the same as ``run_one``'s), the sampled slots and
    the batches' summaries, each with its ``peak_profile`` as ``_profile``. ``slots``: a sample drawn
    elsewhere (bench/fleet.py draws many for one traffic seed), instead of ``fleet_slots``."""
    if slots is None:
        slots = fleet_slots(sc, seed)
    n_batches = batch_count(len(slots))
    parts = []
    for b in range(n_batches):
        part = run_one(sc, seed, slots=slots[b::n_batches], shortcuts=shortcuts)
        parts.append(part)
        if bar is not None:
            bar.update(len(slots[b::n_batches]))
    return merge(parts), slots, [{**summarize_one(p, sc.duration), "_profile": peak_profile(p.series, sc.duration)}
                                 for p in parts]

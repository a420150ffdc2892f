"""Sampled fleets (``fleet.sample``, docs/model.md#sampled-fleets): which slots are simulated, and when a
sample would be wrong.

Every slot has its own random streams and connection ids, so a slot simulates exactly as it would in
the whole fleet (tests/test_sampling.py). A seeded uniform sample of slot ids is therefore, exactly,
those slots of the full run; totals scale to the fleet (sim.metrics.fleet). That holds only while the
slots share no state. Slots that share a client instance's port budget are sampled by whole
instances, and slots that share an Envoy worker's upstream pool by whole workers; slots competing for
any other limit are not independent, and a sample of them would be silently wrong, so it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.config.fleet import is_sampled
from sim.config.resolve import world_spec
from sim.config.schema import Scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.execution.simulate import slots_independent
from sim.metrics.fleet import batch_count, peak_profile
from sim.metrics.summary import summarize_one
from sim.model.groups import pool_count, shares_upstream_pools, worker_groups
from sim.model.scenario import Records, merge
from sim.spec import Shortcuts
from sim.spec.classes import class_counts, class_slots, slot_classes

#: the spawn key of the sample's random stream, apart from every replication's model streams
SAMPLE_STREAM = 0x5A3F1E
#: the fewest slots a traffic class's sample has (all of a smaller class): ``class_allocation``
MIN_CLASS_SAMPLE = 100


def sampling_clusters(sc: Scenario) -> int:
    """What a sample draws: 0 when the slots are independent (it draws slots); else the number of
    clusters whose slots share state with each other and with no other cluster's, where slot ``s``
    is in cluster ``s % clusters``, and the sample draws whole clusters, each with every slot it runs
    (the stratified scheme of docs/model.md):

    * client instances, when the only state slots share is a per-instance port budget on the
      client's leg;
    * Envoy workers (``envoy.concurrency`` of each of ``envoy.replicas`` instances), when it is Envoy's
      upstream pools (one per worker).

    Any other shared state refuses the sample (one line, exit 2), and so does a sample that would
    take every cluster (the whole fleet, by surprise)."""
    if slots_independent(sc):
        return 0
    spec = world_spec(sc)
    clusters = spec.client.instances
    by_instance = (clusters >= 2 and not any(m.max_flows is not None for m in spec.lb + spec.upstream_lb)
                   and not any(m.ports_limit is not None for m in spec.upstream_lb)
                   and not any(m.terminating for m in spec.lb)
                   and all(m.ports_per == "client_instance" for m in spec.lb if m.ports_limit is not None)
                   and not shares_upstream_pools(spec))
    by_worker = worker_groups(spec, range(min(sc.connections, 2))) is not None
    if by_worker:
        clusters = pool_count(spec)
    if not (by_instance or by_worker) or clusters < 2:
        raise ConfigError("the fleet's slots share state (a flow table with max_flows, a port budget that "
                          "several slots draw on beyond one client instance's, or Envoy's upstream pools "
                          "together with another limit), so a sample of them would not behave as they do in "
                          "the whole fleet; sampling is refused rather than silently wrong",
                          key="fleet.sample",
                          allowed="no sample (the fleet simulated whole), no shared state (an Envoy "
                          "listener with protocol: tcp_proxy has no pools), Envoy's pools alone over "
                          "envoy.concurrency × envoy.replicas 2 or more (whole workers are then sampled), or "
                          "port budgets per client_instance over 2 or more client.instances (whole instances "
                          "are then sampled)")
    if sc.fleet is not None and is_sampled(sc.fleet) and _clusters_drawn(sc, clusters) >= clusters:
        unit = ("Envoy workers (envoy.concurrency × envoy.replicas)" if by_worker
                else "client instances (client.instances)")
        raise ConfigError(f"{sc.fleet.sample} would take all {clusters} {unit}: slots "
                          "sharing state are sampled by whole clusters, and at least 2 are drawn, so this "
                          "sample is the whole fleet",
                          key="fleet.sample",
                          allowed=f"a sample of fewer slots than {clusters - 1} of the {clusters} clusters "
                          "hold, more clusters, or no sample")
    return clusters


def _clusters_drawn(sc: Scenario, clusters: int) -> int:
    """How many whole clusters a sample of ``fleet.sample`` slots draws: as many as hold about that
    many slots, at least 2."""
    assert sc.fleet is not None
    return min(clusters, max(2, round(sc.fleet.sample_size() / (sc.connections / clusters))))


def check_sampling(sc: Scenario) -> None:
    """Refuse a sample that would be wrong (``sampling_clusters``)."""
    if is_sampled(sc.fleet):
        sampling_clusters(sc)


def sampling_strata(sc: Scenario) -> list[tuple[str, int]]:
    """The strata of a sample of slots: each traffic class, (name, slots in the fleet), in config
    order; [] when the sample is not stratified (one class, or whole client instances are drawn)."""
    classes = sc.classes()
    if len(classes) < 2 or sampling_clusters(sc):
        return []
    counts = class_counts([c.share for c in classes], sc.connections)
    return [(c.name, n) for c, n in zip(classes, counts, strict=True)]


def class_allocation(counts: Sequence[int], sample: int) -> list[int]:
    """Each class's sample: its share of ``sample`` proportional to its slots (largest remainders),
    raised to MIN_CLASS_SAMPLE slots (the whole class when it is smaller), so that a rare class still
    has slots enough for an interval. The floors may make the sample larger than ``sample``."""
    return [max(min(n, MIN_CLASS_SAMPLE), k) for n, k in zip(counts, class_counts(counts, sample), strict=True)]


def fleet_slots(sc: Scenario, seed: int) -> Sequence[int]:
    """The slots one replication simulates: all of them, or a uniform sample without replacement
    drawn from ``seed`` (the replication's seed, so each replication samples afresh), sorted: of
    slots (of each traffic class apart when there are several: ``sampling_strata``), or of whole
    client instances (``sampling_clusters``: as many instances as hold about ``fleet.sample`` slots,
    at least 2), each with every slot it runs."""
    if sc.fleet is None or not is_sampled(sc.fleet):
        return range(sc.connections)
    clusters = sampling_clusters(sc)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SAMPLE_STREAM,)))
    strata = sampling_strata(sc)
    if strata:  # a uniform sample of each traffic class (class_allocation), found by rank in its class
        counts = [n for _, n in strata]
        ids = np.concatenate([class_slots(h, rng.choice(n, size=k, replace=False), counts)
                              for h, (n, k) in enumerate(zip(counts, class_allocation(counts, sc.fleet.sample_size()),
                                                              strict=True))])
    elif not clusters:
        ids = rng.choice(sc.connections, size=sc.fleet.sample_size(), replace=False)
    else:
        m = _clusters_drawn(sc, clusters)
        ids = np.concatenate([np.arange(k, sc.connections, clusters)
                              for k in rng.choice(clusters, size=m, replace=False)])
    ids.sort()
    return ids.tolist()


def sample_size(sc: Scenario) -> int:
    """The slots one replication simulates: ``fleet.sample``'s, or more when the traffic classes'
    floors raise it (``class_allocation``)."""
    if sc.fleet is None or not is_sampled(sc.fleet):
        return sc.connections
    strata = sampling_strata(sc)
    if strata:
        return sum(class_allocation([n for _, n in strata], sc.fleet.sample_size()))
    return sc.fleet.sample_size()


def sample_fraction(sc: Scenario) -> float:
    """Simulated slots over the fleet's slots (1.0 without a sample)."""
    return sample_size(sc) / sc.connections


def run_sampled(sc: Scenario, seed: int, bar=None, shortcuts: Shortcuts | None = None,
                slots: Sequence[int] | None = None) -> tuple[Records, Sequence[int], list[dict]]:
    """One replication of a sampled fleet: its sample simulated in random batches
    (sim.metrics.fleet.batch_count), whose summaries give the intervals of the figures the model
    counts per device. Returns the merged records (the same as ``run_one``'s), the sampled slots and
    the batches' summaries, each with its ``peak_profile`` as ``_profile``. ``slots``: a sample drawn
    elsewhere (bench/fleet.py draws many for one traffic seed), instead of ``fleet_slots``."""
    if slots is None:
        slots = fleet_slots(sc, seed)
    clusters = sampling_clusters(sc)
    # A batch holds whole sampling units (slots, or client instances), dealt out in a seeded random
    # order: dealt in slot order, every batch would get a slice of the ramp (a systematic sample),
    # and the batches would agree more than random subsamples do, so the intervals would be too narrow.
    # A stratified sample is batched class by class: a batch's device figures (keepalive packets, new
    # flows) are then one class's, which its stratum's weight scales (sim.metrics.fleet).
    strata = sampling_strata(sc)
    stratum = (slot_classes(slots, [n for _, n in strata]).tolist() if strata else [0] * len(slots))
    batches: list[tuple[int, list[int]]] = []
    for h in range(max(1, len(strata))):
        mine = [s for s, k in zip(slots, stratum, strict=True) if k == h]
        units = sorted({s % clusters for s in mine}) if clusters else mine
        if not units:
            continue
        n_batches = min(batch_count(len(units), bool(clusters)), len(units))
        key = (SAMPLE_STREAM, 1) if h == 0 else (SAMPLE_STREAM, 1, h)
        order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key)).permutation(len(units))
        turn = {units[k]: i % n_batches for i, k in enumerate(order)}
        batches += [(h, [s for s in mine if turn[s % clusters if clusters else s] == b]) for b in range(n_batches)]
    parts = []
    for _, batch in batches:
        parts.append(run_one(sc, seed, slots=batch, shortcuts=shortcuts))
        if bar is not None:
            bar.update(len(batch))
    return merge(parts), slots, [{**summarize_one(p, sc.duration),
                                  "_profile": peak_profile(p.series, sc.duration, p.columns), "_stratum": h}
                                 for p, (h, _) in zip(parts, batches, strict=True)]

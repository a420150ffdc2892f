"""A sampled fleet's figures scaled to the whole fleet, with 95 % intervals (docs/model.md#sampled-fleets).

The sample is a uniform sample of slots without replacement, and slots are independent, so the
fleet's total of an additive figure is estimated by ``N × (mean per sampled slot)`` (N slots in the
fleet). The intervals, by the kind of figure:

* events counted per slot (silent drops, failed and hung requests, connect failures): when no slot had
  one, the rule of three, ``[0, 3N/n]`` (n sampled slots); when no slot had more than one, the exact
  binomial (Clopper-Pearson) interval of the share of slots with one, times N; otherwise the
  percentile bootstrap over slots;
* durations (hang and zombie seconds, heavy-tailed): the percentile bootstrap over slots; null when
  none was observed (a duration has no rule of three);
* figures the model counts per device rather than per connection (keepalive packets, new flows,
  LB RSTs, bytes, mean flows): the sample is simulated as ``B`` random batches of slots,
  and the interval is Student's t on the batch totals (``B - 1`` degrees of freedom);
* NLCU (mean and peak): a bucket's NLCU is the largest of its dimensions, which add up over batches
  and scale by N/n; the batches are resampled with replacement (``nlcu_intervals``).

A finite-population correction is not applied: the intervals are slightly conservative when the
sample is a large share of the fleet.

Peaks: the flow peak and the zombie peak are the sample's peak times N/n, with a bootstrap over the
batches for their intervals (``peak_intervals``); the worst second of new flows and of failed requests is that of
independent arrivals at the fleet's rate, estimated through windows that hold enough events to be a
rate (``rate_peak``), since the sample's own worst second is mostly noise. The per-device figures
are scaled by N/n and carry no interval. Every figure not named here is the sample's. Each traffic
class's figures (``by_class``), its device figures too: sim.metrics.fleet_classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sim.facts.names import CONN_ID_STRIDE
from sim.metrics.capacity import active_flows_at, nlcu_dimensions
from sim.metrics.summary import OTHER_FAILURE_FIELDS, REASON_FIELDS, failure_reasons
from sim.metrics.totals import ZOMBIE_SIDES
from sim.spec.classes import slot_classes

#: per-slot event counts: (summary field, the per-connection column, downstream rows only)
SLOT_EVENTS = (("silent_drops", "silent_drop", False), ("failed_requests", "failed_requests", True),
               ("hung", "hung", True), ("connect_failures", "connect_outcome", False))
#: per-slot durations (seconds): (summary field, the columns summed)
SLOT_DURATIONS = (("hang_s_total", ("hang_s",)), ("zombie_s_total", ("client_zombie_s", "server_zombie_s")))
#: additive figures the model keeps per device: their intervals come from the batches
BATCH_FIELDS = ("requests", "keepalive_packets", "keepalive_pps", "new_flows", "lb_rsts", "keepalive_bytes_per_s",
                "lb_bytes_per_s", "lb_active_flows_mean", "new_flows_per_s", "lb_keepalive_pps", "keepalive_pps_steady")
#: scaled by N/n: peaks (``peak_intervals`` gives their intervals), and NLCU (a maximum over its
#: dimensions, which scale alike, so it scales too; a batch's NLCU is not a share of the sample's, so
#: its interval comes from resampled batches: ``nlcu_intervals``)
SCALED_FIELDS = ("lb_active_flows_peak", "new_flows_peak_per_s", "nlcu_peak", "failed_requests_peak_per_s",
                 "nlcu_mean", "zombies_peak", "at_risk_gaps")
#: each device's figures scaled by N/n (no intervals)
DEVICE_SCALED = ("flows_peak", "flows_mean", "new_flows_peak_per_s", "keepalive_pps", "nlcu_mean")
#: bootstrap resamples (seeded: the intervals are reproducible)
RESAMPLES = 2000
#: the batches a sample is simulated in, at most (fewer for a small sample: at least 20 slots each)
MAX_BATCHES = 20


def batch_count(units: int, clusters: bool = False) -> int:
    """How many batches a sample of ``units`` slots (or of whole client instances, when
    ``clusters``) is simulated in: at least 20 slots each, an instance or more each."""
    return max(2, min(MAX_BATCHES, units if clusters else units // 20))


def _per_slot(columns: dict, slots: Sequence[int], field: str, column: str, downstream_only: bool) -> np.ndarray:
    index = {s: i for i, s in enumerate(slots)}
    out = np.zeros(len(slots))
    legs = columns["leg"]
    for k, cid in enumerate(columns["conn_id"]):
        if downstream_only and legs[k] != "downstream":
            continue
        v = columns[column][k]
        if field == "connect_failures":
            v = v in ("connect_timeout", "connect_refused")
        out[index[cid // CONN_ID_STRIDE]] += float(v)
    return out


def _bootstrap(values: np.ndarray, scale: float, rng: np.random.Generator) -> list[float]:
    n = len(values)
    means = values[rng.integers(0, n, size=(RESAMPLES, n))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return [float(lo * scale), float(hi * scale)]


def count_interval(per_slot: np.ndarray, fleet_scale: float, rng: np.random.Generator) -> list[float]:
    """The 95 % interval of a count's fleet total; ``fleet_scale`` = fleet slots (times replications)."""
    from scipy import stats  # imported when a sample is scaled: it costs 70 MB and 0.5 s
    n = len(per_slot)
    total = float(per_slot.sum())
    if total == 0:
        return [0.0, 3.0 * fleet_scale / n]  # the rule of three
    if per_slot.max() <= 1:
        ci = stats.binomtest(int(total), n).proportion_ci(0.95, method="exact")
        return [float(ci.low * fleet_scale), float(ci.high * fleet_scale)]
    return _bootstrap(per_slot, fleet_scale, rng)


def batch_interval(values: Sequence[float], scale: float) -> list[float] | None:
    """Student's t interval of a total from its batch totals, times ``scale``; None when NaN."""
    from scipy import stats  # imported when a sample is scaled: it costs 70 MB and 0.5 s
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or not np.all(np.isfinite(v)):
        return None
    half = float(stats.t.ppf(0.975, len(v) - 1) * math.sqrt(len(v)) * v.std(ddof=1))
    total = float(v.sum())
    return [max(0.0, (total - half) * scale), (total + half) * scale]


#: bootstrap resamples of the batches for a peak (each sums a whole profile per resample)
PEAK_RESAMPLES = 500
#: the finest grid a peak profile uses, and the most points it may have
PROFILE_MAX_POINTS = 100_000


def peak_profile(series: dict, duration_s: float, columns: dict | None = None) -> dict[str, np.ndarray]:
    """One batch's contribution to the peaks, on a grid of whole seconds (coarser for runs longer
    than PROFILE_MAX_POINTS seconds, ``step_s``): flows in the capacity LB's table at each grid mark,
    new flows and failed requests per grid step, and from the batch's rows (``columns``) its zombies
    of each side at each grid mark. Batches add up: the sample's profile is their sum."""
    step = max(1, math.ceil(duration_s / PROFILE_MAX_POINTS))
    n = max(1, math.ceil(duration_s / step))
    marks = np.arange(n) * float(step)

    def per_step(per_s: dict[int, int]) -> np.ndarray:
        out = np.zeros(n)
        for sec, count in per_s.items():
            if sec // step < n:
                out[sec // step] += count
        return out

    prof = {"step_s": np.array([float(step)]), "failed_requests_peak_per_s": per_step(series["failed_per_s"])}
    if columns is not None:  # a zombie of a side: from the drop until that side closed (RowTotals)
        drop_at = np.asarray(columns["drop_at_s"], dtype=float)
        for side in ZOMBIE_SIDES:
            held = np.asarray(columns[side], dtype=float)
            z = held > 0
            intervals = np.stack([drop_at[z], drop_at[z] + held[z]], axis=1)
            prof[f"_zombies_{side}"] = active_flows_at(intervals, marks).astype(float)
    if series["devices"]:
        dev = series["devices"][0]
        prof["lb_active_flows_peak"] = active_flows_at(dev["intervals"], marks).astype(float)
        prof["new_flows_peak_per_s"] = per_step(dev["new_flows_per_s"])
        dims = nlcu_dimensions(dev, duration_s, series["bucket_s"])
        if dims is not None:  # NLCU per bucket in each dimension: they add up over batches
            prof.update({f"_nlcu_{d}": v for d, v in dims.items()})
    return prof


def nlcu_intervals(profiles: list[list[dict[str, np.ndarray]]], ratio: float, units: int,
                   rng: np.random.Generator) -> dict[str, list[float]]:
    """95 % intervals of the fleet's ``nlcu_mean`` and ``nlcu_peak``. A bucket's NLCU is the largest
    of its dimensions, each of which adds up over batches (the sample's dimension is the batches' sum)
    and scales by N/n, so the fleet's NLCU per bucket is the largest scaled dimension. The batches of
    a replication are resampled with replacement, as for the flow peak (``peak_intervals``), their
    dimensions summed and scaled, and the mean and the peak over buckets taken; averaged (the mean)
    and maxed (the peak) over replications as the summary does; the 2.5th to 97.5th percentile of
    PEAK_RESAMPLES of them.

    That interval is one value where every batch agrees, as every open flow and every ramp's new
    flow do; yet a few slots of the fleet that no sampled slot resembles (the last of a 60 s ramp,
    whose SYN reaches the LB in the second minute) move the fleet's figure. So the interval spans at
    least ±3/n of the estimate (``units``: n, the units sampled): a share of the fleet that none of
    n sampled units showed is below 3/n at 95 % (the rule of three). Empty when the capacity LB has
    no NLCU profile."""
    keys = sorted(k for k in profiles[0][0] if k.startswith("_nlcu_"))
    if not keys:
        return {}
    means, peaks, est_means, est_peaks = [], [], [], []
    for rep in profiles:
        b = len(rep)
        stacks = [np.stack([p[k] for p in rep]) for k in keys]  # per dimension: batches x buckets
        weights = rng.multinomial(b, np.full(b, 1.0 / b), size=PEAK_RESAMPLES)  # resamples x batches
        per_bucket = np.max([weights @ st for st in stacks], axis=0) * ratio
        means.append(per_bucket.mean(axis=1))
        peaks.append(per_bucket.max(axis=1))
        sample = np.max([st.sum(axis=0) for st in stacks], axis=0) * ratio
        est_means.append(float(sample.mean()))
        est_peaks.append(float(sample.max()))
    out: dict[str, list[float]] = {}
    floor = 3.0 / max(units, 1)
    for field, draws, est in (("nlcu_mean", np.mean(means, axis=0), float(np.mean(est_means))),
                              ("nlcu_peak", np.max(peaks, axis=0), max(est_peaks))):
        bounds: list[float] = np.percentile(draws, [2.5, 97.5]).tolist()
        out[field] = [max(0.0, min(bounds[0], est * (1 - floor))), max(bounds[1], est * (1 + floor))]
    return out


#: per-second peaks: the window grows until the sample's busiest window holds this many events
PEAK_WINDOW_EVENTS = 100
#: peaks of a count per second, estimated through a window (``rate_peak``)
RATE_PEAKS = ("new_flows_peak_per_s", "failed_requests_peak_per_s")


def _max_quantile(rates: np.ndarray, q: float) -> float:
    """The ``q`` quantile of the largest of independent Poisson counts with these means (one per grid
    step): the smallest k with P(every count <= k) >= q."""
    from scipy import stats  # imported when a sample is scaled: it costs 70 MB and 0.5 s
    rates = rates[rates > 0]
    if not len(rates):
        return 0.0
    top = float(rates.max())
    lo, hi = 0, int(top + 12 * math.sqrt(top) + 20)
    while lo < hi:
        k = (lo + hi) // 2
        if float(stats.poisson.logcdf(k, rates).sum()) >= math.log(q):
            hi = k
        else:
            lo = k + 1
    return float(lo)


def rate_peak(counts: np.ndarray, step_s: float, ratio: float) -> tuple[float, list[float]]:
    """The fleet's worst second of a count (new flows, failed requests), from the sample's counts per
    grid step, and its 95 % interval.

    Scaling the sample's worst second by N/n would be badly high: a sample's count per second is
    small and noisy, and its largest is mostly noise. So the fleet's rate is estimated first, through
    windows of 1, 2, 4, … steps, the first whose busiest window holds at least PEAK_WINDOW_EVENTS
    events (a storm, where the whole sample reconnects in one second, keeps one step): the sample's
    count in the window around each step, per step, times N/n. The fleet's own worst second is then
    that of independent arrivals at this rate: the median of the largest of Poisson counts is the
    estimate. The interval spans the two ways arrivals can be: its low end is the peak rate alone
    (arrivals as regular as a ramp have no excess over their rate), the busiest window's count less
    the largest noise among that many windows, at the low end of its exact Poisson (Garwood)
    interval; its high end is the 97.5th percentile
    of the Poisson largest count at the high end of that interval. With no event in the sample: 0,
    and the rule of three, ``[0, 3 N/n]`` per step."""
    from scipy import stats  # imported when a sample is scaled: it costs 70 MB and 0.5 s
    total = float(counts.sum())
    if total == 0:
        return 0.0, [0.0, 3.0 * ratio / step_s]
    csum = np.concatenate([[0.0], np.cumsum(counts)])
    n = len(counts)
    w = 1
    while True:
        busiest = float((csum[w:] - csum[:-w]).max())
        if busiest >= PEAK_WINDOW_EVENTS or 2 * w > n:
            break
        w *= 2
    idx = np.arange(n)
    a, b = np.clip(idx - w // 2, 0, n - w), np.clip(idx - w // 2, 0, n - w) + w
    rates = (csum[b] - csum[a]) / w * ratio  # the fleet's mean count per step, around each step
    # The busiest window is itself the largest of many noisy windows: at its low end the peak rate
    # may be as low as that count less the largest noise of as many Poisson windows (a Gaussian
    # maximum, sqrt(2 ln windows) standard deviations), then less the 95 % Garwood margin.
    windows = max(2, n - w + 1)
    shrunk = max(0.0, busiest - math.sqrt(2 * math.log(windows) * busiest))
    low = stats.chi2.ppf(0.025, 2 * shrunk) / 2 / busiest if shrunk > 0 else 0.0
    high = stats.chi2.ppf(0.975, 2 * (busiest + 1)) / 2 / busiest
    estimate = _max_quantile(rates, 0.5)
    return estimate / step_s, [float(rates.max() * low / step_s), _max_quantile(rates * high, 0.975) / step_s]


def peak_intervals(profiles: list[list[dict[str, np.ndarray]]], ratio: float,
                   rng: np.random.Generator) -> dict[str, tuple[float, list[float]]]:
    """The fleet's peaks and their 95 % intervals, the largest over replications (as the summary
    takes them). The flow peak: the batches of a replication are resampled with replacement, summed,
    and the peak of the sum scaled by N/n; the estimate is the sample's scaled peak, the interval the
    2.5th to 97.5th percentile of PEAK_RESAMPLES such peaks. Counts per second: ``rate_peak``."""
    out: dict[str, tuple[float, list[float]]] = {}
    step_s = float(profiles[0][0]["step_s"][0])
    for field in ("lb_active_flows_peak", *RATE_PEAKS):
        if any(field not in p for rep in profiles for p in rep):
            continue
        best: tuple[float, list[float]] | None = None
        for rep in profiles:
            stack = np.stack([p[field] for p in rep])  # batches x grid
            if field in RATE_PEAKS:
                est, ci = rate_peak(stack.sum(axis=0), step_s, ratio)
            else:
                b = len(rep)
                weights = rng.multinomial(b, np.full(b, 1.0 / b), size=PEAK_RESAMPLES)
                lo, hi = np.percentile((weights @ stack).max(axis=1) * ratio, [2.5, 97.5])
                est, ci = float(stack.sum(axis=0).max() * ratio), [float(lo), float(hi)]
            if best is None or est > best[0]:
                best = (est, ci)
        assert best is not None
        out[field] = best
    sides = [f"_zombies_{side}" for side in ZOMBIE_SIDES]
    if all(k in p for rep in profiles for p in rep for k in sides):
        out["zombies_peak"] = _zombies_peak(profiles, sides, ratio, rng)
    return out


def _zombies_peak(profiles: list[list[dict[str, np.ndarray]]], sides: list[str], ratio: float,
                  rng: np.random.Generator) -> tuple[float, list[float]]:
    """The fleet's zombie peak (the larger side's most zombies at once) and its interval, as the flow
    peak's: batches resampled, each side's sum peaked, the larger side taken, scaled by N/n. With no
    zombie in the sample, 0 and the rule of three for the units that would hold one, [0, 3 N/n]."""
    best: tuple[float, list[float]] | None = None
    for rep in profiles:
        stacks = [np.stack([p[k] for p in rep]) for k in sides]  # per side: batches x grid
        est = float(max(st.sum(axis=0).max() for st in stacks) * ratio)
        if est == 0:
            ci = [0.0, 3.0 * ratio]
        else:
            b = len(rep)
            weights = rng.multinomial(b, np.full(b, 1.0 / b), size=PEAK_RESAMPLES)
            peaks = np.max([(weights @ st).max(axis=1) for st in stacks], axis=0) * ratio
            lo, hi = np.percentile(peaks, [2.5, 97.5])
            ci = [float(lo), float(hi)]
        if best is None or est > best[0]:
            best = (est, ci)
    assert best is not None
    return best


def combine_strata(parts: list[tuple[float, list[float] | None]]) -> tuple[float, list[float] | None]:
    """A stratified total and its interval from each stratum's (estimate, interval): the estimates
    add up, and each side's half-widths add in quadrature (independent strata); one stratum is
    returned as it is. None when a stratum has no interval."""
    if len(parts) == 1:
        return parts[0]
    est = float(sum(e for e, _ in parts))
    if any(ci is None for _, ci in parts):
        return est, None
    low = math.sqrt(sum((e - ci[0]) ** 2 for e, ci in parts if ci is not None))
    high = math.sqrt(sum((ci[1] - e) ** 2 for e, ci in parts if ci is not None))
    return est, [max(0.0, est - low), est + high]


def scale_to_fleet(summary: dict, replications: list[tuple[dict, Sequence[int]]], batches: list[dict],
                   fleet_slots: int, duration_s: float, seed: int, clusters: int = 0,
                   strata: Sequence[tuple[str, int]] = (), classes: int = 1) -> dict:
    """``summary`` (combined over replications) with its figures scaled to the fleet of ``fleet_slots``
    slots, each with ``<name>_ci95``. ``replications``: each replication's record columns and the slots
    it sampled; ``batches``: every batch's summary, over all replications, in replication order,
    each with its ``peak_profile`` as ``_profile`` and its stratum as ``_stratum``
    (sim.execution.sampling.run_sampled). ``clusters``: the client instances when whole instances
    were sampled (slot i runs on instance i mod ``clusters``), else 0: the sampling unit is then the
    slot. ``strata``: (traffic class, its slots in the fleet) when each class was sampled apart
    (stratified), else empty. Counts are summed per unit, and each stratum's total is (its units in
    the fleet / its units sampled) × its sample's (the cluster estimator); the strata's totals add
    up, their intervals in quadrature (``combine_strata``). ``by_class`` gets each class's own
    (sim.metrics.fleet_classes); ``classes``: the fleet's traffic classes (one: its by_class is the fleet)."""
    # each class's figures build on this module's intervals: imported here, where they are needed
    from sim.metrics.fleet_classes import CLASS_ADDITIVE, scaled_class_devices, scaled_classes

    rng = np.random.default_rng(seed)
    per_rep = len(batches) // len(replications)  # every replication has the same number of batches
    sampled = sum(len(s) for _, s in replications)
    reps = len(replications)
    # each sampled slot's unit, distinct across replications (every one is a sample of its own)
    keys = np.concatenate([(np.asarray(s, dtype=np.int64) % clusters if clusters else np.arange(len(s)))
                           + i * (2 ** 40) for i, (_, s) in enumerate(replications)])
    _, unit = np.unique(keys, return_inverse=True)
    units_sampled = int(unit.max()) + 1
    scale = (clusters or fleet_slots) * reps  # the summary sums replications: so does its estimate
    ratio = scale / units_sampled  # N / n, or instances / instances sampled
    # the strata: each unit's, and each stratum's units in the fleet (times replications) and sampled
    counts = [n for _, n in strata] if strata else [clusters or fleet_slots]
    unit_stratum: np.ndarray = np.zeros(units_sampled, dtype=np.int64)
    if strata:
        unit_stratum[unit] = np.concatenate([slot_classes(s, counts) for _, s in replications])
    n_h = np.bincount(unit_stratum, minlength=len(counts))
    scale_h = [n * reps for n in counts]
    ratio_h = [sh / k if k else 0.0 for sh, k in zip(scale_h, n_h, strict=True)]

    def per_unit(per_slot: np.ndarray) -> np.ndarray:
        return np.bincount(unit, weights=per_slot, minlength=units_sampled)

    def stratified(per: np.ndarray, interval) -> list[tuple[float, list[float] | None]]:
        """Each stratum's (total, interval); a stratum sampled whole (a census) has no sampling error."""
        out = []
        for h, (sh, k) in enumerate(zip(scale_h, n_h, strict=True)):
            v = per[unit_stratum == h] if strata else per
            est = float(v.sum()) * sh / k if k else 0.0
            out.append((est, [est, est] if k == sh or not k else interval(v, sh)))
        return out

    out = dict(summary)
    observed = {}
    by_parts: dict[str, list] = {}
    for field, column, down in SLOT_EVENTS:
        per = per_unit(np.concatenate([_per_slot(c, s, field, column, down) for c, s in replications]))
        observed[field] = summary[field]
        by_parts[field] = stratified(per, lambda v, sh: count_interval(v, sh, rng))
        out[field], out[f"{field}_ci95"] = combine_strata(by_parts[field])
    for field, cols in SLOT_DURATIONS:
        per = per_unit(sum(np.concatenate([_per_slot(c, s, field, col, False) for c, s in replications])
                           for col in cols))
        observed[field] = summary[field]
        by_parts[field] = stratified(per, lambda v, sh: _bootstrap(v, sh, rng) if v.any() else None)
        out[field], out[f"{field}_ci95"] = combine_strata(by_parts[field])
        if not per.any():
            out[f"{field}_ci95"] = None
    for field in BATCH_FIELDS:
        observed[field] = summary[field]
        # a rate is averaged over replications, and the batches of all of them sum to reps x the rate
        per_rep_field = field.endswith(("_per_s", "_pps", "_mean"))
        if not strata:
            out[field] = summary[field] * ratio
            out[f"{field}_ci95"] = batch_interval([b[field] for b in batches], ratio / reps if per_rep_field else ratio)
            continue
        parts: list[tuple[float, list[float] | None]] = []
        for h, r in enumerate(ratio_h):
            values = [b[field] for b in batches if b["_stratum"] == h]
            w = r / reps if per_rep_field else r
            est = float(sum(values)) * w
            parts.append((est, [est, est] if n_h[h] == scale_h[h] else batch_interval(values, w)))
        out[field], out[f"{field}_ci95"] = combine_strata(parts)
    for field in SCALED_FIELDS:
        observed[field] = summary[field]
        out[field] = summary[field] * ratio
    # a stratified sample's batches are each one class's: a batch's peak profile carries its weight
    weight = [1.0] * len(counts) if not strata else [r / ratio for r in ratio_h]
    profiles = [[_weighted(b["_profile"], weight[b.get("_stratum", 0)]) for b in batches[i:i + per_rep]]
                for i in range(0, len(batches), per_rep)]
    for field, (est, ci) in peak_intervals(profiles, ratio, rng).items():
        out[field] = est
        out[f"{field}_ci95"] = ci
    for field, ci in nlcu_intervals(profiles, ratio, units_sampled, rng).items():
        out[f"{field}_ci95"] = ci
    names = [name for name, _ in strata]
    by_class = summary.get("by_class", {})

    def additive(field: str) -> float:
        """A row figure's fleet total: each class's scaled by its own weight when stratified."""
        if not strata:
            return summary[field] * ratio
        return sum(by_class[name][field] * r for name, r in zip(names, ratio_h, strict=True) if name in by_class)

    out["connections"] = additive("connections")
    for field in REASON_FIELDS + OTHER_FAILURE_FIELDS:  # the split of failed requests, scaled alike
        if field not in ("hung",):
            out[field] = additive(field)
    out["failure_reasons"] = failure_reasons(out)
    # the LB's price is a fixed hourly part plus the NLCUs': not proportional, and not known here
    out["lb_cost_per_hour_usd"] = math.nan
    out["devices"] = [{**d, **{k: d[k] * ratio for k in DEVICE_SCALED if d.get(k) is not None}}
                      for d in summary["devices"]]
    # rates (silent_drop_rate, failed_request_rate) are ratios: the sample's are the estimates
    per_day = 86400.0 / duration_s / reps
    out["expected_drops_per_day"] = out["silent_drops"] * per_day
    out["expected_drops_per_day_ci95"] = [x * per_day for x in out["silent_drops_ci95"]]
    out["sample_fraction"] = sampled / (fleet_slots * reps)
    out["fleet_connections"] = fleet_slots
    out["sampled_connections"] = sampled // reps
    out["observed"] = observed
    out["by_class"] = scaled_classes(by_class, names, by_parts, ratio_h, n_h, counts, reps, per_day) if strata \
        else {name: {**f, **{k: f[k] * ratio for k in CLASS_ADDITIVE + ("silent_drops", "failed_requests",
                                                                          "hang_s_total", "zombie_s_total",
                                                                          "connect_failures")}}
              for name, f in by_class.items()}
    scaled_class_devices(out["by_class"], by_class, batches, names, out, ratio, ratio_h, n_h, scale_h, reps, rng,
                         classes == 1)
    return out


def _weighted(profile: dict[str, np.ndarray], w: float) -> dict[str, np.ndarray]:
    """A batch's peak profile times its stratum's weight relative to the whole sample's (1: as it is)."""
    if w == 1.0:
        return profile
    return {k: v if k == "step_s" else v * w for k, v in profile.items()}

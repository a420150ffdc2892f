"""A sampled fleet's figures per traffic class (``by_class``), scaled to each class's share of the fleet
(docs/model.md#sampled-fleets, docs/outputs.md#traffic-classes).

A stratified sample (each class sampled apart) scales each class by its own stratum: N_h / n_h, its
slots in the fleet over its slots sampled. Its batches are each one class's, so the figures the
devices count (CLASS_DEVICE_FIELDS) get their intervals from that class's batches, as the fleet's do
from all of them: Student's t on the batch totals for the additive ones (keepalive packets, new
flows, LB RSTs, bytes, mean flows), the fleet's methods on the class's batch profiles for the peaks
and NLCU. A sample that is not stratified (one class, or whole client instances drawn) scales every
class by the fleet's N/n; a class's additive device figures then take their intervals from its part
of each batch, and its peaks and NLCU are its sample's scaled by N/n, without an interval (a batch's
peak profile is of every class's flows). A fleet of one class gets the fleet's own estimates.
"""

from __future__ import annotations

import math

import numpy as np

from sim.metrics.fleet import (
    BATCH_FIELDS,
    batch_interval,
    nlcu_intervals,
    peak_intervals,
)
from sim.metrics.summary import CLASS_DEVICE_FIELDS, OTHER_FAILURE_FIELDS, REASON_FIELDS

#: a traffic class's figures that add up over slots (``by_class``): scaled by its stratum's weight
CLASS_ADDITIVE = ("connections", "requests", "requests_in_flight_at_end", "hang_s_open_total", "keepalive_probes",
                  "at_risk_gaps", "zombies_peak", *REASON_FIELDS, *OTHER_FAILURE_FIELDS)
#: a class's device figures whose interval comes from the batches (additive)
DEVICE_BATCH = tuple(f for f in BATCH_FIELDS if f in CLASS_DEVICE_FIELDS)
#: a class's device figures scaled by its weight: peaks and NLCU (the cost is not proportional: NaN)
DEVICE_SCALED = tuple(f for f in CLASS_DEVICE_FIELDS if f not in DEVICE_BATCH and f != "lb_cost_per_hour_usd")


def scaled_classes(by_class: dict[str, dict], names: list[str], parts: dict[str, list], ratio_h: list[float],
                   n_h: np.ndarray, counts: list[int], reps: int, per_day: float) -> dict[str, dict]:
    """Each class's row figures scaled to its share of the fleet by its own stratum, with the intervals
    of the per-slot counts and durations, its expected drops per fleet-day and its sample fraction."""
    out = {}
    for h, name in enumerate(names):
        f = dict(by_class.get(name, {}))
        if not f:
            continue
        observed = {k: f[k] for k in parts}
        f.update({k: f[k] * ratio_h[h] for k in CLASS_ADDITIVE})
        for field, each in parts.items():
            f[field], f[f"{field}_ci95"] = each[h]
        f["expected_drops_per_day"] = f["silent_drops"] * per_day
        f["expected_drops_per_day_ci95"] = [x * per_day for x in f["silent_drops_ci95"]]
        f["sample_fraction"] = float(n_h[h]) / (counts[h] * reps)
        f["fleet_connections"] = counts[h]
        f["sampled_connections"] = int(n_h[h]) // reps
        f["observed"] = observed
        out[name] = f
    return out


def scaled_class_devices(scaled: dict[str, dict], by_class: dict[str, dict], batches: list[dict],
                         names: list[str], fleet: dict, ratio: float, ratio_h: list[float], n_h: np.ndarray,
                         scale_h: list[int], reps: int, rng: np.random.Generator, one_class: bool) -> None:
    """Put each class's CLASS_DEVICE_FIELDS, scaled to the fleet, into ``scaled`` (its ``by_class``
    as scaled so far), with ``<name>_ci95`` where the module's docstring says. ``by_class``: the
    sample's own per class; ``batches``: every batch's summary (``_stratum``, ``_profile``, its own
    ``by_class``); ``names``: the strata's classes (empty: not stratified); ``fleet``: the fleet's
    estimates, which a fleet of one class (``one_class``) takes."""
    per_rep = len(batches) // reps
    for name, f in scaled.items():
        mine = by_class.get(name, {})
        observed = f.setdefault("observed", {})
        observed.update({k: mine.get(k, math.nan) for k in DEVICE_BATCH + DEVICE_SCALED})
        if one_class:  # the fleet is this class
            f.update({k: v for k, v in fleet.items() if k.removesuffix("_ci95") in CLASS_DEVICE_FIELDS})
            continue
        h = names.index(name) if names else -1
        r = ratio_h[h] if names else ratio
        census = bool(names) and n_h[h] == scale_h[h]  # every slot of the class simulated: no sampling error
        ours = [b for b in batches if not names or b["_stratum"] == h]
        for field in DEVICE_BATCH:
            values = [b.get("by_class", {}).get(name, {}).get(field, 0.0) for b in ours]
            # a rate is averaged over replications: the batches of all of them sum to reps x the rate
            w = r / reps if field.endswith(("_per_s", "_pps", "_mean")) else r
            est = float(sum(values)) * w
            f[field] = est
            f[f"{field}_ci95"] = [est, est] if census else batch_interval(values, w)
        for field in DEVICE_SCALED:
            value = mine.get(field, math.nan)
            f[field] = math.nan if value is None else value * r
        f["lb_cost_per_hour_usd"] = math.nan
        if names:  # the class's batches are its own: its peaks and NLCU as the fleet's are estimated
            profiles = [[b["_profile"] for b in batches[i:i + per_rep] if b["_stratum"] == h]
                        for i in range(0, len(batches), per_rep)]
            profiles = [p for p in profiles if p]
            if profiles:
                for field, (est, ci) in peak_intervals(profiles, r, rng).items():
                    f[field], f[f"{field}_ci95"] = est, ci
                for field, ci in nlcu_intervals(profiles, r, int(n_h[h]), rng).items():
                    f[f"{field}_ci95"] = ci

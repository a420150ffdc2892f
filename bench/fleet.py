"""Benchmark: a fleet answered from a sample, and how often its intervals cover the full run.

    python bench/fleet.py [--connections 10000000] [--sample 20000] [--duration 24h] [--replicas R]
    python bench/fleet.py --coverage 40 --connections 100000 --sample 5000 [--duration 24h]

The first form runs configs/nlb.yaml's traffic (without its sweep, with a tcp_proxy listener: a
pooled HTTP listener is sampled by whole Envoy workers, and nlb.yaml's 2 are the whole fleet) for a
sampled fleet and prints the wall time, the peak memory and the headline estimates with their 95 % intervals. The second
runs the whole fleet once, then draws ``--coverage`` samples of it (seeded 0, 1, ...) from the same
traffic, and counts for each headline figure how many of the sampled intervals contain the full
run's value (issue 17 asks at least 36 of 40).

``--replicas R`` keeps nlb.yaml's HTTP listener and puts the fleet behind R gateway pods
(``envoy.replicas``), each with nlb.yaml's 2 workers: a sample then draws whole workers of 1/(2R) of
the fleet each.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

from sim import native  # noqa: E402
from sim.config.load import load_config  # noqa: E402
from sim.execution.runner import run_scenario  # noqa: E402
from sim.execution.sampling import run_sampled  # noqa: E402
from sim.execution.seeds import replication_seed  # noqa: E402
from sim.metrics.fleet import scale_to_fleet  # noqa: E402
from sim.metrics.summary import combine, summarize_one  # noqa: E402

#: the figures whose intervals are reported and checked
HEADLINE = ("silent_drops", "failed_requests", "keepalive_pps", "new_flows", "lb_active_flows_mean",
            "lb_active_flows_peak", "new_flows_peak_per_s", "expected_drops_per_day", "nlcu_mean", "nlcu_peak")


def _scenario(args, sample: int | None):
    # a tcp_proxy listener: an HTTP one pools its upstream connections per worker, a fleet sharing pools
    # is sampled by whole workers, and 2 of nlb.yaml's 2 are the whole fleet (docs/model.md#sampled-fleets)
    sets = [f"connections={args.connections}", f"duration={args.duration}", "replications=1", "sweep={}"]
    sets.append(f"envoy.replicas={args.replicas}" if args.replicas else "envoy.listener.protocol=tcp_proxy")
    if sample is not None:
        sets.append(f"fleet.sample={sample}")
    return load_config(args.config, sets).scenario


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def sampled(args) -> dict:
    sc = _scenario(args, args.sample)
    t0 = time.perf_counter()
    s = run_scenario(sc, keep_records=False).summary
    wall = time.perf_counter() - t0
    fig = {"config": args.config, "listener": "http (pooled)" if args.replicas else "tcp_proxy",
           "envoy_replicas": sc.envoy.replicas if sc.envoy else None, "fleet_connections": args.connections,
           "sampled_connections": s["sampled_connections"], "duration_s": sc.duration, "wall_s": round(wall, 1),
           "peak_rss_mb": _peak_rss_mb()}
    for f in HEADLINE:
        fig[f] = round(float(s[f]), 3)
        fig[f"{f}_ci95"] = [round(float(x), 3) for x in s[f"{f}_ci95"]]
    return fig


def coverage(args) -> dict:
    """One full run, then ``args.coverage`` samples of the same traffic (the replication's seed)."""
    sc = _scenario(args, None)
    seed = replication_seed(sc.seed, 0)
    t0 = time.perf_counter()
    full = run_scenario(sc, keep_records=False).summary
    full_wall = time.perf_counter() - t0
    sampled_sc = _scenario(args, args.sample)
    covered = dict.fromkeys(HEADLINE, 0)
    t1 = time.perf_counter()
    for k in range(args.coverage):
        rng = np.random.default_rng(k)
        slots = sorted(rng.choice(args.connections, size=args.sample, replace=False).tolist())
        rec, slots, batches = run_sampled(sampled_sc, seed, slots=slots)
        summary = combine([summarize_one(rec, sc.duration)], [rec.run])
        est = scale_to_fleet(summary, [(rec.columns, slots)], batches, args.connections, sc.duration, k)
        full["expected_drops_per_day"] = full["silent_drops"] * 86400.0 / sc.duration
        for f in HEADLINE:
            lo, hi = est[f"{f}_ci95"]
            covered[f] += bool(lo <= full[f] <= hi)
        print(f"sample {k}: " + ", ".join(f"{f} {est[f]:.4g} [{est[f + '_ci95'][0]:.4g}, "
                                          f"{est[f + '_ci95'][1]:.4g}]" for f in HEADLINE[:4]), file=sys.stderr)
    return {"config": args.config, "fleet_connections": args.connections, "sampled_connections": args.sample,
            "duration_s": sc.duration, "samples": args.coverage, "full_run_wall_s": round(full_wall, 1),
            "samples_wall_s": round(time.perf_counter() - t1, 1),
            **{f"full_{f}": round(float(full[f]), 3) for f in HEADLINE},
            **{f"covered_{f}": covered[f] for f in HEADLINE}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/nlb.yaml")
    ap.add_argument("--connections", type=int, default=10_000_000)
    ap.add_argument("--sample", type=int, default=20_000)
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--coverage", type=int, default=0, help="check the intervals over this many samples")
    ap.add_argument("--replicas", type=int, default=0,
                    help="keep the HTTP listener, behind this many Envoy instances (envoy.replicas)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    fig = coverage(args) if args.coverage else sampled(args)
    fig.update({"core": native.describe(), "python": platform.python_version()})
    return report(fig, args.out)


if __name__ == "__main__":
    sys.exit(main())

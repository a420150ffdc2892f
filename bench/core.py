"""Benchmark: configs/nlb.yaml at fleet size vs a bare SimPy loop with as many timers.

    python bench/core.py [--connections 10000] [--duration 24h] [--out docs/performance-core.json]

Prints the model's wall time and events per second next to a bare SimPy loop of the same number
of concurrent processes yielding timeouts, in the same process, and their ratio.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

from sim import native  # noqa: E402
from sim.config.load import load_config  # noqa: E402
from sim.execution import run_one  # noqa: E402
from sim.execution.runner import run_split  # noqa: E402


def bare_simpy(processes: int, events: int) -> tuple[float, int]:
    """``processes`` processes each yielding 1 s timeouts until ``events`` have run."""
    env = simpy.Environment()
    per = max(1, events // processes)

    def proc(env, i):
        yield env.timeout(i / processes)
        for _ in range(per):
            yield env.timeout(1.0)

    for i in range(processes):
        env.process(proc(env, i))
    t0 = time.perf_counter()
    env.run()
    wall = time.perf_counter() - t0
    return wall, processes * (per + 2)


def essential_events(rec) -> int:
    """The issue's essential count, from the run's own records: one event per packet that can
    change state at an endpoint or a middlebox, one per timer firing that does something.

    Per TCP connection: the handshake (SYN, SYN-ACK, ACK); per request on a leg: the request and
    the response and an ACK for each; per client request: the timer that sends it; per keepalive
    probe: the timer firing that sends it, the probe and its answer. Closes and errors are left
    out, so the count is a floor.
    """
    c = rec.columns
    legs = len(c["conn_id"])
    requests = sum(c["requests"])
    client_requests = sum(r for r, leg in zip(c["requests"], c["leg"], strict=True) if leg == "downstream")
    probes = sum(c["keepalive_probes"])
    return 3 * legs + 4 * requests + client_requests + 3 * probes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/nlb.yaml")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--workers", type=int, default=1, help="split the fleet over N processes (run_split)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    sc = load_config(args.config, [f"connections={args.connections}", f"duration={args.duration}",
                                   "replications=1"]).scenario
    t0 = time.perf_counter()
    rec = run_split(sc, 1, args.workers) if args.workers > 1 else run_one(sc, 1)
    wall = time.perf_counter() - t0
    events = rec.run["events"]
    essential = essential_events(rec)
    bare_wall, bare_events = bare_simpy(args.connections, min(events, 5_000_000))
    model_eps = events / wall
    bare_eps = bare_events / bare_wall
    fig = {
        "config": args.config, "connections": args.connections, "duration_s": sc.duration,
        "workers": args.workers,
        "wall_s": round(wall, 2), "events": events, "events_per_s": round(model_eps),
        "bare_simpy_events_per_s": round(bare_eps), "ratio_to_bare": round(model_eps / bare_eps, 3),
        "events_per_connection_hour": round(events / (args.connections * sc.duration / 3600), 1),
        "essential_events": essential,
        "events_per_essential_event": round(events / essential, 3),
        "core": native.describe(),
        "python": platform.python_version(), "machine": platform.machine(),
    }
    return report(fig, args.out)


if __name__ == "__main__":
    sys.exit(main())

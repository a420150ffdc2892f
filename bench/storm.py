"""Benchmark: a reconnect storm of N client slots with full-jitter backoff against a limited table.

    python bench/storm.py [--connections 100000] [--max-flows 150000] [--duration 1h] [--jitter full]

configs/storm-drop-all.yaml at fleet size: at 450 s the NLB forgets every flow, every slot's next
request (600 s) is reset, and the slots reconnect with backoff (base 10 s, cap 120 s, full jitter)
through a conntrack table of ``--max-flows`` entries that still holds the old flows, so a third of
them keep failing and backing off. A fleet behind a limited table is simulated whole (one process,
one core). Prints the wall time, the events run and the storm's figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sim.config.load import load_config  # noqa: E402
from sim.execution import run_one  # noqa: E402
from sim.metrics.summary import summarize_one  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "storm-drop-all.yaml"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--max-flows", type=int, default=150_000, help="the conntrack table's size (lb.max_flows)")
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--jitter", default="full", choices=["none", "full", "equal", "decorrelated"])
    args = ap.parse_args()
    sets = [f"connections={args.connections}", f"duration={args.duration}",
            f"lb=[{{profile: aws-nlb-tcp}}, {{profile: linux-conntrack, max_flows: {args.max_flows}}}]",
            f"client.reconnect={{policy: backoff, base: 10s, cap: 120s, jitter: {args.jitter}}}"]
    sc = load_config(str(CONFIG), sets).scenario
    t0 = time.perf_counter()
    rec = run_one(sc, 1)
    wall = time.perf_counter() - t0
    s = summarize_one(rec, sc.duration)
    events = rec.run["events"]
    print(f"storm: {args.connections:,} slots, {args.duration}, backoff {args.jitter} jitter, "
          f"table {args.max_flows:,}")
    print(f"wall {wall:.1f} s, {events:,} events ({events / max(wall, 1e-9):,.0f} events/s, "
          f"{events / args.connections:.1f} per slot)")
    print(f"failure_reasons {dict((k, v) for k, v in s['failure_reasons'].items() if v)}, "
          f"connects_rejected {[d['connects_rejected'] for d in s['devices']]}, "
          f"new_flows {s['new_flows']:,}")


if __name__ == "__main__":
    main()

"""Benchmark: a reconnect storm of N client slots with full-jitter backoff against a limited table
or a NAT's port budget.

    python bench/storm.py [--connections 100000] [--max-flows 150000] [--duration 1h] [--jitter full]
    python bench/storm.py --ports 55000 [--connections 100000]     # issue 16: NAT port budget

configs/storm-drop-all.yaml at fleet size: at 450 s the NLB forgets every flow, every slot's next
request (600 s) is reset, and the slots reconnect with backoff (base 10 s, cap 120 s, full jitter)
through a conntrack table of ``--max-flows`` entries that still holds the old flows, so a third of
them keep failing and backing off.

With ``--ports N`` the device is an AWS NAT Gateway (aws-nat-gateway) with a budget of N ports per
destination instead: the fleet opens at once and the slots beyond N find no port (their SYNs are
dropped, connect_timeout at 131 s, then they back off and retry); at 450 s the gateway forgets every
flow (storm drop_all), the next request of each slot that had one is reset (rst_to_sender from the
inside) and every slot reconnects through the same budget, with the same backoff.

A fleet behind a limited table or budget is simulated whole (one process, one core). Prints (and
with ``--out`` saves as JSON) the wall and CPU time, the events run and the storm's figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

from sim import native  # noqa: E402
from sim.config.load import load_config  # noqa: E402
from sim.execution import run_one  # noqa: E402
from sim.metrics.summary import summarize_one  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "storm-drop-all.yaml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100_000)
    ap.add_argument("--max-flows", type=int, default=150_000, help="the conntrack table's size (lb.max_flows)")
    ap.add_argument("--ports", type=int, help="an aws-nat-gateway budget of this many ports per destination "
                    "instead of the conntrack table")
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--jitter", default="full", choices=["none", "full", "equal", "decorrelated"])
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    sets = [f"connections={args.connections}", f"duration={args.duration}",
            f"client.reconnect={{policy: backoff, base: 10s, cap: 120s, jitter: {args.jitter}}}"]
    if args.ports is None:
        limit = f"table {args.max_flows:,}"
        sets.append(f"lb=[{{profile: aws-nlb-tcp}}, {{profile: linux-conntrack, max_flows: {args.max_flows}}}]")
    else:
        limit = f"aws-nat-gateway, {args.ports:,} ports per destination"
        sets += [f"lb={{profile: aws-nat-gateway, ports: {{limit: {args.ports}}}}}",
                 "storm={at: 450s, kind: drop_all, device: aws-nat-gateway}"]
    sc = load_config(str(CONFIG), sets).scenario
    t0, c0 = time.perf_counter(), time.process_time()
    rec = run_one(sc, 1)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = summarize_one(rec, sc.duration)
    events = rec.run["events"]
    dev = s["devices"][-1]
    return report({
        "storm": f"{args.connections:,} slots, {args.duration}, backoff {args.jitter} jitter, {limit}",
        "connections": args.connections, "duration": args.duration, "jitter": args.jitter,
        "ports": args.ports, "max_flows": None if args.ports is not None else args.max_flows,
        "core": native.describe(), "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "events": events,
        "events_per_s": round(events / max(wall, 1e-9)), "events_per_slot": round(events / args.connections, 1),
        "connect_failures": s["connect_failures"], "connects_rejected": dev["connects_rejected"],
        "failed_requests": s["failed_requests"], "new_flows": s["new_flows"],
        "peak": dev.get("ports_peak") if args.ports is not None else dev.get("flows_peak"),
        "exhausted_at_s": dev["exhausted_at_s"], "seconds_full": dev["seconds_full"],
    }, args.out)


if __name__ == "__main__":
    sys.exit(main())

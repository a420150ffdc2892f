"""The cost estimate (sim/execution/cost.py) against measured event counts, for every shipped config.

    python bench/cost_check.py [--connections 40] [--duration 2h]

One replication of each config with the given fleet and duration: the estimated events, the events
the run counted, and their ratio. The refusal limits sit far above any ratio error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from figures import report  # noqa: E402

from sim.config.load import load_config  # noqa: E402
from sim.execution import run_one  # noqa: E402
from sim.execution.cost import point_cost  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=40)
    ap.add_argument("--duration", default="2h")
    ap.add_argument("--out")
    args = ap.parse_args()
    rows = {}
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        sc = load_config(path, [f"connections={args.connections}", f"duration={args.duration}",
                                "replications=1"]).scenario
        measured = run_one(sc, 1).run["events"]
        estimate = point_cost(sc).events
        rows[path.stem] = {"measured": measured, "estimate": round(estimate), "ratio": round(estimate / measured, 2)}
    ratios = [r["ratio"] for r in rows.values()]
    return report({"connections": args.connections, "duration": args.duration, "configs": rows,
                   "ratio_min": min(ratios), "ratio_max": max(ratios)}, args.out)


if __name__ == "__main__":
    sys.exit(main())

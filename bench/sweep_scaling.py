"""Benchmark: a 16-point sweep of configs/nlb.yaml with 1 and 2 process workers.

    python bench/sweep_scaling.py [--points 16] [--connections 500]

Runs the same grid twice through sim.execution.sweep.run_sweep and the verdicts (no report.md) and
prints both wall times and the speed-up. The grid: 8 Envoy keepidle values x HZ 250/1000, one replication each.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

from sim.config.load import load_config  # noqa: E402
from sim.execution.sweep import run_sweep  # noqa: E402
from sim.report.sweep_summary import summarize_sweep  # noqa: E402

IDLES = ["60s", "120s", "240s", "300s", "310s", "320s", "330s", "340s", "345s", "349s", "350s", "400s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=16, help="even number; half per HZ value")
    ap.add_argument("--connections", type=int, default=500)
    ap.add_argument("--duration", default="2h")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    idles = (IDLES * 4)[: args.points // 2]
    sweep = json.dumps({"envoy.listener.keepalive.idle": idles, "conditions": {"kernel.hz": [250, 1000]}})
    sets = [f"connections={args.connections}", f"duration={args.duration}", "replications=1", f"sweep={sweep}"]
    loaded = load_config("configs/nlb.yaml", sets)
    walls = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            summarize_sweep(run_sweep(loaded, Path(tmp), executor="process", workers=workers, quiet=True,
                                      connections=False))
            walls[workers] = time.perf_counter() - t0
    fig = {"points": args.points, "connections": args.connections, "duration": args.duration,
           "wall_s_1_worker": round(walls[1], 2), "wall_s_2_workers": round(walls[2], 2),
           "speedup": round(walls[1] / walls[2], 3)}
    return report(fig, args.out)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: peak memory per open connection (configs/fleet-idle.yaml, every connection open).

    python bench/memory.py [--connections 100000] [--duration 1h]

Peak resident memory of the process (ru_maxrss) after the run, minus the same after a 1-connection
run of the same config, divided by the number of connections.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

CHILD = """
import resource, sys
sys.path.insert(0, {root!r})
from sim.config.load import load_config
from sim.model.scenario import run_one
sc = load_config('configs/fleet-idle.yaml', ['connections={n}', 'duration={d}']).scenario
rec = run_one(sc, 1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rec.run['wall_s'])
"""


def peak_kib(n: int, duration: str) -> tuple[int, float]:
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=root, n=n, d=duration)], capture_output=True,
                         text=True, check=True, cwd=root).stdout.split()
    return int(out[0]), float(out[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100000)
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--out")
    args = ap.parse_args()
    base, _ = peak_kib(1, args.duration)
    peak, wall = peak_kib(args.connections, args.duration)
    per = (peak - base) * 1024 / args.connections
    return report({"connections": args.connections, "duration": args.duration, "peak_rss_mib": round(peak / 1024, 1),
                   "baseline_rss_mib": round(base / 1024, 1), "bytes_per_connection": round(per),
                   "wall_s": round(wall, 1)}, args.out)


if __name__ == "__main__":
    sys.exit(main())

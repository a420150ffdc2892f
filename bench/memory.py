"""Benchmark: peak memory per open connection (configs/fleet-idle.yaml, every connection open).

    python bench/memory.py [--connections 100000] [--duration 1h]

Peak resident memory of the process (ru_maxrss) after the run, minus the same after a 1-connection
run of the same config, divided by the number of connections. The whole fleet is in memory at once
(``run_one(chunk_slots=0)``), so this is the model's state per connection; ``--chunk-slots N``
measures run_one's chunked evaluation instead.
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
from sim import native
from sim.execution import run_one
sc = load_config('configs/fleet-idle.yaml', ['connections={n}', 'duration={d}']).scenario
rec = run_one(sc, 1, chunk_slots={chunk})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rec.run['wall_s'], native.COMPILED)
"""


def peak_kib(n: int, duration: str, chunk: int) -> tuple[int, float, bool]:
    root = str(Path(__file__).resolve().parents[1])
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=root, n=n, d=duration, chunk=chunk)],
                         capture_output=True, text=True, check=True, cwd=root).stdout.split()
    return int(out[0]), float(out[1]), out[2] == "True"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=100000)
    ap.add_argument("--duration", default="1h")
    ap.add_argument("--chunk-slots", type=int, default=0, help="run_one's chunk size (0: the whole fleet at once)")
    ap.add_argument("--out")
    args = ap.parse_args()
    base, _, _ = peak_kib(1, args.duration, args.chunk_slots)
    peak, wall, compiled = peak_kib(args.connections, args.duration, args.chunk_slots)
    per = (peak - base) * 1024 / args.connections
    return report({"connections": args.connections, "duration": args.duration, "chunk_slots": args.chunk_slots,
                   "core": "compiled (mypyc)" if compiled else "plain Python",
                   "peak_rss_mib": round(peak / 1024, 1), "baseline_rss_mib": round(base / 1024, 1),
                   "bytes_per_connection": round(per), "wall_s": round(wall, 1)}, args.out)


if __name__ == "__main__":
    sys.exit(main())

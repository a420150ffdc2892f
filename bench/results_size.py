"""Benchmark: how big a sweep's results folder is, and what ``--keep summary`` leaves.

    python bench/results_size.py [--config configs/nlb.yaml] [--connections 10000] [--replications 1]

Runs the sweep into a temporary folder (no report: plots are a few hundred KB either way) and
prints the size of every file, then of what ``--keep summary`` keeps.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/nlb.yaml")
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--replications", type=int, default=1)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sim-size-") as tmp:
        out = Path(tmp) / "o"
        cmd = [sys.executable, "-m", "sim", "sweep", args.config, "--quiet", "--no-report", "--out", str(out),
               "--set", f"connections={args.connections}", "--set", f"replications={args.replications}"]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        files = {p.name: _size(p) for p in sorted(out.iterdir())}
        subprocess.run([*cmd, "--resume", "--keep", "summary"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        kept = {p.name: _size(p) for p in sorted(out.iterdir())}
    return report({"config": args.config, "connections": args.connections, "replications": args.replications,
                   "files_bytes": files, "total_mb": round(sum(files.values()) / 1e6, 1),
                   "keep_summary_bytes": kept, "keep_summary_mb": round(sum(kept.values()) / 1e6, 2)}, args.out)


if __name__ == "__main__":
    sys.exit(main())

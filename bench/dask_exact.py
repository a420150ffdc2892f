"""Benchmark: an exact fleet run over a Dask LocalCluster, and the memory it takes per process.

    python bench/dask_exact.py [--connections 1000000] [--duration 24h] [--workers 2]

Runs configs/nlb.yaml's traffic (without its sweep, with a tcp_proxy listener: a pooled HTTP listener
shares Envoy's pools between slots, so it is not split) as `python -m sim run --executor dask --out`
does (sim/execution/dask_run.py): the fleet in chunks over a LocalCluster of ``--workers`` worker
processes, one thread each, every chunk's rows written as a Parquet part, then streamed into
connections.parquet. Prints the wall time (simulating, then merging the parts), the peak RSS of each
worker process and of the client process (which also runs the scheduler), and the headline figures.
The results folder is a temporary one, removed at the end.
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402
from fleet import _scenario  # noqa: E402

from sim import native  # noqa: E402
from sim.execution.dask_run import part_files, run_on_dask  # noqa: E402
from sim.results.folder import write_run  # noqa: E402

HEADLINE = ("connections", "silent_drops", "failed_requests", "keepalive_pps", "new_flows", "lb_active_flows_peak",
            "lb_active_flows_mean", "new_flows_peak_per_s")


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/nlb.yaml")
    ap.add_argument("--connections", type=int, default=1_000_000)
    ap.add_argument("--duration", default="24h")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    args.sample = None
    sc = _scenario(args, None)

    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client, tempfile.TemporaryDirectory(prefix="dask-exact-") as tmp:
        before = client.run(_peak_rss_mb)
        t0 = time.perf_counter()
        result = run_on_dask(sc, Path(tmp) / "parts", scheduler=cluster.scheduler_address, quiet=False)
        sim_wall = time.perf_counter() - t0
        workers = client.run(_peak_rss_mb)
        parts = part_files(Path(tmp) / "parts")
        t1 = time.perf_counter()
        write_run(Path(tmp), parts, result.summary, sc)
        merge_wall = time.perf_counter() - t1
        size_mb = round((Path(tmp) / "connections.parquet").stat().st_size / 2**20, 1)
        import pyarrow.parquet as pq

        rows = pq.ParquetFile(Path(tmp) / "connections.parquet").metadata.num_rows
    s = result.summary
    fig = {"config": args.config, "slots": args.connections, "duration_s": sc.duration,
           "workers": args.workers, "chunks": len(parts), "wall_s": round(sim_wall + merge_wall, 1),
           "simulate_wall_s": round(sim_wall, 1), "merge_wall_s": round(merge_wall, 1), "events": s["run"]["events"],
           "connection_rows": rows, "connections_parquet_mb": size_mb,
           "worker_peak_rss_mb": sorted(workers.values()), "worker_rss_at_start_mb": sorted(before.values()),
           "client_peak_rss_mb": _peak_rss_mb()}
    for f in HEADLINE:
        fig[f] = round(float(s[f]), 3) if isinstance(s[f], float) else s[f]
    fig.update({"core": native.describe(), "python": platform.python_version()})
    return report(fig, args.out)


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark and regenerate docs/performance.md.

    python bench/run_all.py            # about 4 minutes on the 2-core reference machine

Each figure in docs/performance.md comes from this command; nothing there is typed by hand.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bench(script: str, *args: str) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
        subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--out", tmp.name], check=True,
                       cwd=ROOT)
        return json.loads(Path(tmp.name).read_text())


def main() -> int:
    core = _bench("core.py", "--connections", "10000", "--duration", "24h")
    sweep = _bench("sweep_scaling.py", "--points", "16")
    cpu = platform.processor() or platform.machine()
    text = f"""# Performance

Regenerate this page with `python bench/run_all.py` (last run {date.today().isoformat()}, Python
{platform.python_version()}, {cpu}, {_cores()} cores). Timing claims live here, not in unit tests.

## One scenario at fleet scale: `python bench/core.py --connections 10000 --duration 24h`

`configs/nlb.yaml` (Istio gateway behind an NLB, keepalive 300/20/4, exponential 10-minute request
gaps, HZ=250 wheel timers) with 10,000 connections over 24 h simulated, one core:

| figure | value |
|---|---|
| wall time | {core['wall_s']} s |
| SimPy events processed | {core['events']:,} |
| events per second (model) | {core['events_per_s']:,} |
| events per second, bare SimPy loop ({core['connections']:,} processes yielding timeouts) | \
{core['bare_simpy_events_per_s']:,} |
| ratio model / bare loop | {core['ratio_to_bare']} |
| events per connection-hour | {core['events_per_connection_hour']} |

Each request through Envoy costs 8 packet arrivals (request, ACK, forwarded request, ACK,
response, ACK, forwarded response, ACK) plus one application timer; each keepalive round costs a
probe, its ACK and one or two keepalive-timer firings. Loss-probe timers are only queued when a
segment is lost (docs/model.md).

## Sweep scaling: `python bench/sweep_scaling.py --points 16`

A 16-point sweep of `configs/nlb.yaml` ({sweep['connections']} connections, {sweep['duration']} each, one
replication per point), process executor:

| workers | wall time |
|---|---|
| 1 | {sweep['wall_s_1_worker']} s |
| 2 | {sweep['wall_s_2_workers']} s |
| speed-up | {sweep['speedup']}× |
"""
    (ROOT / "docs" / "performance.md").write_text(text)
    print(text)
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())

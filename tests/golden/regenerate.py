"""Golden records: the per-column digests of the connection records of three seeded configs.

    python tests/golden/regenerate.py           # compare, print which columns moved (exit 1 if any)
    python tests/golden/regenerate.py --write   # accept the new records: rewrite tests/golden/records.json

A change to the numbers is then always made on purpose: tests/test_golden.py fails until the
digests are regenerated, and the diff of records.json names the columns that moved.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("records.json")
#: config, --set values, seed: an Istio gateway behind an NLB (keepalive, timer wheel), an Azure LB
#: blackhole (retransmission and keepalive timeouts), and the keep-alive race (app timers, 503s)
CASES = {
    "nlb": ("configs/nlb.yaml", ["connections=60", "duration=2h", "envoy.listener.keepalive.idle=340"], 11),
    "azure-blackhole": ("configs/azure-lb-blackhole.yaml", ["connections=40", "duration=3h"], 12),
    "keepalive-inversion": ("configs/keepalive-inversion.yaml", ["connections=30", "duration=30m"], 13),
}


def _canon(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else repr(v)
    return repr(v)


def digests(name: str) -> dict:
    """{'rows': n, 'columns': {column: sha256 of its values, one per line}} for one case."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from sim.config.load import load_config
    from sim.execution import run_one

    path, sets, seed = CASES[name]
    sc = load_config(ROOT / path, sets).scenario
    cols = run_one(sc, seed).columns
    sha = {k: hashlib.sha256("\n".join(map(_canon, v)).encode()).hexdigest()[:16] for k, v in cols.items()}
    return {"rows": len(cols["conn_id"]), "columns": sha}


def moved(old: dict, new: dict) -> list[str]:
    """Columns whose digest changed, appeared or disappeared (and 'rows' if the count did)."""
    out = ["rows"] if old.get("rows") != new["rows"] else []
    keys = set(old.get("columns", {})) | set(new["columns"])
    return out + sorted(k for k in keys if old.get("columns", {}).get(k) != new["columns"].get(k))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="rewrite records.json with the new digests")
    args = ap.parse_args()
    old = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    new = {name: digests(name) for name in CASES}
    changed = False
    for name in CASES:
        cols = moved(old.get(name, {}), new[name])
        changed |= bool(cols)
        print(f"{name}: " + (f"moved: {', '.join(cols)}" if cols else "unchanged"))
    if args.write:
        GOLDEN.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
        return 0
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())

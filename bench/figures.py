"""Shared by the bench scripts: print figures one per line, optionally save them as JSON."""

from __future__ import annotations

import json
from pathlib import Path


def report(fig: dict, out: str | None) -> int:
    """Print ``fig`` and write it to ``out`` (JSON) when given; returns the exit code 0."""
    width = max(len(k) for k in fig) + 2
    for k, v in fig.items():
        print(f"{k:{width}s} {v}")
    if out:
        Path(out).write_text(json.dumps(fig, indent=2) + "\n")
    return 0

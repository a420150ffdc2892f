"""A results folder as a whole: claiming it before any simulating starts (its marker file), the
resolved config written into it, and the folder of ``run --out``."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from sim import __version__
from sim.output import OutputError, atomic_write, clean, dumps, output_error, write_parquet


def check_writable(folder: Path) -> None:
    """Create ``folder`` and write and remove a small file in it, so that a read-only, full or
    non-directory ``--out`` is refused before any simulating starts."""
    atomic_write(folder / ".write-check", b"keepalive-sim write check\n")
    try:
        (folder / ".write-check").unlink()
    except OSError as exc:
        raise output_error(exc, folder) from None


#: the file that marks a folder as written by this package: ``{"kind": "sweep"|"run", "name": ...}``
MARKER = ".keepalive-sim.json"


def read_marker(folder: Path) -> dict | None:
    """What this package wrote in ``folder`` (None: nothing), folders from before the marker included."""
    try:
        return dict(json.loads((folder / MARKER).read_text()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError, TypeError):
        return {"kind": "unknown"}
    if (folder / "config.resolved.yaml").is_file():
        if (folder / "sweep.json").is_file() or (folder / "parts").is_dir():
            return {"kind": "sweep"}
        if (folder / "summary.json").is_file():
            return {"kind": "run"}
    return None


def claim_folder(folder: Path, kind: str, name: str, overwrite: bool = False) -> dict | None:
    """Make ``folder`` a results folder of ``kind`` (``run`` or ``sweep``) for scenario ``name``,
    before any simulating: it must be new, empty, or a results folder of the same kind (``overwrite``
    lifts that), and writable. Returns what the folder held before (its marker), or None."""
    if folder.exists() and not folder.is_dir():
        raise OutputError("is a file, not a folder", file=str(folder), allowed="a new or empty folder (--out)")
    previous = read_marker(folder) if folder.is_dir() else None
    if not overwrite and folder.is_dir():
        if previous is None and any(folder.iterdir()):
            raise OutputError("is not empty and is not a keepalive-sim results folder; writing there could "
                              "replace your files", file=str(folder),
                              allowed="a new or empty folder, a folder written by `python -m sim`, or "
                                      "--overwrite to write into it anyway")
        if previous is not None and previous.get("kind") != kind:
            raise OutputError(f"holds the results of `{previous.get('kind')}`, not of `{kind}`", file=str(folder),
                              allowed="another --out, or --overwrite to write into it anyway")
    check_writable(folder)
    atomic_write(folder / MARKER, json.dumps({"kind": kind, "name": name, "version": __version__}) + "\n")
    return previous


def resolved_config_yaml(scenario, raw_sweep: Any = None) -> str:
    """The fully resolved config plus the package version and the command line."""
    data = clean(scenario.model_dump(mode="json", exclude_none=True))
    data.pop("sweep", None)
    if raw_sweep:
        data["sweep"] = clean(raw_sweep)
    header = (f"# sim_version: {__version__}\n"
              f"# command: {' '.join(['python -m sim'] + sys.argv[1:])}\n"
              "# Every default filled in; loadable as a config again.\n")
    return header + yaml.safe_dump(data, sort_keys=False)


def write_run(out: Path, connections: Any, summary: dict, scenario: Any, raw_sweep: Any = None) -> None:
    """A ``run --out`` folder: connections.parquet (a DataFrame, every replication, or a list of
    Parquet part files streamed into it one at a time and then removed: ``run --executor dask``),
    summary.json and config.resolved.yaml."""
    if isinstance(connections, list):
        from sim.results.store import stream_merge

        # a pooled fleet's chunks (Envoy workers' slots) interleave: rows are put back in id order
        stream_merge(connections, out / "connections.parquet", key="conn_id", by="replication")
        for f in connections:
            f.unlink()
        with contextlib.suppress(OSError, IndexError):
            connections[0].parent.rmdir()  # unless someone else's files are in it
    else:
        write_parquet(connections, out / "connections.parquet")
    atomic_write(out / "summary.json", dumps(summary) + "\n")
    atomic_write(out / "config.resolved.yaml", resolved_config_yaml(scenario, raw_sweep))

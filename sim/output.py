"""Files written for the user: JSON with NaN as null, atomic writes, resolved configs."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from sim import __version__


def clean(obj: Any) -> Any:
    """JSON-safe: NaN/inf → None, numpy scalars → Python."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(clean(obj), indent=2, sort_keys=False)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_parquet(df, path: Path) -> None:
    """A DataFrame as Parquet (pyarrow), atomically."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    atomic_write(path, buf.getvalue())


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

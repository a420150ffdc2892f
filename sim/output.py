"""Files written for the user: JSON with NaN as null, atomic writes with the user's umask, and the
JSON text that table cells holding mappings and lists are stored as. What a results folder holds is
sim/results' business."""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from sim.errors import ConfigError


class OutputError(ConfigError):
    """A results file could not be written (read-only, full, not a folder): exit 2, one line.
    Picklable with its fields, so that a pool worker's error reaches the parent intact."""

    def __reduce__(self):
        return _output_error, (self.problem, self.file, self.allowed)


def _output_error(problem: str, file: str, allowed: str) -> OutputError:
    return OutputError(problem, file=file, allowed=allowed)


def file_mode() -> int:
    """The mode of every results file: what open() would give (0o666 minus the umask), not
    mkstemp's 0o600. The umask is read from /proc (reading it with os.umask means setting it, which
    another thread could observe); elsewhere it is set and restored at once."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


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


def json_text(value: Any) -> str:
    """The canonical JSON text of a value: keys sorted, no spaces, NaN as null, integers exact
    (a seed of 2**128 - 1 is its decimal digits). Mappings and lists in tables are stored as this."""
    return json.dumps(clean(value), sort_keys=True, separators=(",", ":"))


def from_json_text(text: Any, hashable: bool = False) -> Any:
    """A cell stored by ``json_text`` as its value again. ``hashable``: mappings and lists come back
    as their canonical text (swept values are grouped and compared), otherwise as dicts and lists.
    None and NaN (a missing cell) stay as they are."""
    if not isinstance(text, str):
        return text
    value = json.loads(text)
    if hashable and isinstance(value, (dict, list)):
        return json_text(value)
    return value


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "not writable" + (" (read-only file system)" if exc.errno == errno.EROFS else "")
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a file is in the way (the results folder must be a directory)"
    return exc.strerror or str(exc)


def output_error(exc: OSError, path: Path) -> OutputError:
    return OutputError(f"cannot write results: {_describe(exc)}", file=str(path),
                       allowed="a writable directory with free space; choose another with --out")


def _write_bytes(fd: int, data: bytes) -> None:
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file.
    An OSError (read-only, full disk, a file where the folder should be) is an OutputError."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        os.fchmod(fd, file_mode())
        _write_bytes(fd, data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as exc:
        raise output_error(exc, path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_parquet(df, path: Path) -> None:
    """A DataFrame as Parquet (pyarrow), atomically."""
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    atomic_write(path, buf.getvalue())

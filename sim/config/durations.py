"""Durations: a number of seconds, or a string like ``350s``, ``5m``, ``2h``, ``1500ms``."""

from __future__ import annotations

import math
import numbers
import re

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|min|m|h|d)?\s*$")
ALLOWED = "seconds as a number, or a string like 350s, 5m, 2h, 1500ms, 1d"


def parse_duration(value: object) -> float:
    """Seconds (float, >= 0) from a YAML value; ValueError with the allowed forms otherwise."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a duration (allowed: {ALLOWED})")
    if isinstance(value, numbers.Real):
        seconds = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration (allowed: {ALLOWED})")
        seconds = float(m.group(1)) * _UNITS_S[m.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration (allowed: {ALLOWED})")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{value!r} is not a finite duration (allowed: {ALLOWED})")
    if seconds < 0:
        raise ValueError(f"{value!r} is negative (allowed: a duration >= 0)")
    return seconds


def whole_seconds(value: object, option: str, lo: int, hi: int) -> int:
    """A duration the kernel takes in whole seconds (TCP_KEEPIDLE/INTVL), range-checked (R3)."""
    seconds = parse_duration(value)
    if abs(seconds - round(seconds)) > 1e-9:
        raise ValueError(f"{option} takes whole seconds, got {value!r} (allowed: integers {lo}..{hi})")
    n = int(round(seconds))
    if not lo <= n <= hi:
        raise ValueError(f"{option} {n} s is rejected by the kernel with EINVAL (allowed: {lo}..{hi})")
    return n

"""Durations: a number of seconds, or a string like ``350s``, ``5m``, ``2h``, ``1500ms``.

Every duration is 0 or between ``MIN_S`` and ``MAX_S``:

* ``MAX_S`` = 1e9 s (about 31.7 years). Simulated time is a float64 number of seconds; up to 1e9 s its
  resolution (one ulp, 1.2e-7 s) stays below ``MIN_S``, so adding the smallest delay always moves
  the clock. Larger values (``10**400`` written out, ``1.0e+300``) are refused instead of
  overflowing a float or producing event times that no longer advance.
* ``MIN_S`` = 1 µs. A shorter non-zero delay (``one_way_delay: 1.0e-300``) is absorbed by the clock
  (``t + 1e-300 == t``): a fixed 0 s gap would then run forever without time moving. Real one-way
  delays start around 10 µs (two namespaces on one host).
"""

from __future__ import annotations

import math
import numbers
import re

_UNITS_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(ms|s|min|m|h|d)?\s*$")
ALLOWED = "seconds as a number, or a string like 350s, 5m, 2h, 1500ms, 1d"
#: the shortest non-zero duration (seconds): see the module docstring
MIN_S = 1e-6
#: the longest duration (seconds): see the module docstring
MAX_S = 1e9
RANGE = "0, or 1µs..1e9 s, about 31.7 years"


def short_repr(value: object) -> str:
    """A value for a one-line message: a 400-digit integer is not spelt out."""
    text = repr(value)
    if len(text) <= 24:
        return text
    return f"{text[:10]}... ({len(text)} {'digits' if isinstance(value, int) else 'characters'})"


def parse_duration(value: object, *, unit_required: bool = False) -> float:
    """Seconds (float, 0 or ``MIN_S``..``MAX_S``) from a YAML value; ValueError with the allowed forms.

    ``unit_required``: a string must carry a unit (``'350'`` in a config is a number hidden in a
    string, and is refused there; command-line options such as ``--one-way-delay 0.001`` accept it).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a duration (allowed: {ALLOWED})")
    if isinstance(value, int):
        if value > MAX_S:  # before float(): 10**400 would overflow
            raise ValueError(f"{short_repr(value)} s is longer than {MAX_S:g} s (allowed: {RANGE})")
        seconds = float(value)
    elif isinstance(value, numbers.Real):
        seconds = float(value)
    elif isinstance(value, str):
        m = _RE.match(value)
        if not m:
            raise ValueError(f"{short_repr(value)} is not a duration (allowed: {ALLOWED})")
        if unit_required and m.group(2) is None:
            raise ValueError(f"{value!r} has no unit: a number in quotes is a string "
                             f"(allowed: a number of seconds such as 350, or a string with a unit such as 350s)")
        seconds = float(m.group(1)) * _UNITS_S[m.group(2) or "s"]
    else:
        raise ValueError(f"{short_repr(value)} is not a duration (allowed: {ALLOWED})")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{value!r} is not a finite duration (allowed: {ALLOWED})")
    if seconds < 0:
        raise ValueError(f"{short_repr(value)} is negative (allowed: a duration >= 0)")
    if seconds > MAX_S:
        raise ValueError(f"{short_repr(value)} is longer than {MAX_S:g} s (allowed: {RANGE})")
    if 0 < seconds < MIN_S:
        raise ValueError(f"{short_repr(value)} is shorter than 1 µs, the clock's resolution (allowed: {RANGE})")
    return seconds


def config_duration(value: object) -> float:
    """A duration written in a config: as ``parse_duration``, and a string must carry a unit."""
    return parse_duration(value, unit_required=True)


def whole_seconds(value: object, option: str, lo: int, hi: int, *, unit_required: bool = False) -> int:
    """A duration the kernel takes in whole seconds (TCP_KEEPIDLE/INTVL), range-checked (R3)."""
    seconds = parse_duration(value, unit_required=unit_required)
    if abs(seconds - round(seconds)) > 1e-9:
        raise ValueError(f"{option} takes whole seconds, got {value!r} (allowed: integers {lo}..{hi})")
    n = int(round(seconds))
    if not lo <= n <= hi:
        raise ValueError(f"{option} {n} s is rejected by the kernel with EINVAL (allowed: {lo}..{hi})")
    return n

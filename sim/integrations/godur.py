"""Go's ``time.ParseDuration``, which Istio's DestinationRule and MeshConfig durations go through
(Istio reads its CRDs with the legacy ``github.com/golang/protobuf/jsonpb``, whose Duration
unmarshaller calls ``time.ParseDuration``; istio/istio pkg/util/protomarshal/protomarshal.go).

Accepted: an optional sign, then one or more ``<decimal><unit>`` with units ns, us, µs, μs, ms, s,
m, h (``1m15s``, ``1500ms``, ``0.5m``, ``1h2m3.5s``, ``300us``); a bare ``0``. Rejected, as Go
rejects them: ``1d`` (no day unit), a number without a unit, spaces, an empty string.
"""

from __future__ import annotations

import re
from fractions import Fraction

_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")
#: Go's Duration is an int64 of nanoseconds
_MAX_NS = 2**63 - 1
ALLOWED = "a Go duration such as 300s, 5m, 1m15s, 1500ms, 1h2m3.5s (units ns, us, ms, s, m, h; no d)"


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string; ValueError (with the allowed forms) otherwise."""
    s = text
    neg = False
    if s[:1] in "+-" and s:
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(f"{text!r} is not a Go duration (allowed: {ALLOWED})")
    total = Fraction(0)
    pos = 0
    while pos < len(s):
        m = _PART.match(s, pos)
        if not m or m.group(1) in ("", "."):
            unit = re.match(r"[0-9.]*([A-Za-z]*)", s[pos:])
            hint = f": unknown unit {unit.group(1)!r}" if unit and unit.group(1) else ": missing unit"
            raise ValueError(f"{text!r} is not a Go duration{hint} (allowed: {ALLOWED})")
        total += Fraction(m.group(1) if not m.group(1).endswith(".") else m.group(1)[:-1]) * _UNIT_NS[m.group(2)]
        pos = m.end()
    ns = int(total)  # Go truncates the fractional nanoseconds
    if ns > _MAX_NS:
        raise ValueError(f"{text!r} overflows Go's duration (allowed: at most about 2562047h)")
    return -ns if neg else ns

"""``sysctl -a`` / sysctl.conf lines (``key = value``) and ``grep . /proc/sys/...`` lines.

Only the keepalive and retransmission sysctls the model reads are kept; their ranges are checked.
A key given twice is a warning naming both lines, not an error: ``sysctl -p`` and
``sysctl --system`` apply lines (and files) in order, so the last value is the one in effect, and
layered sysctl.conf / sysctl.d files legitimately override each other. Different values are still
worth a look, so the warning says which one wins.
"""

from __future__ import annotations

import re

from sim.errors import ConfigError
from sim.facts.kernel import SYSCTL_RANGES
from sim.integrations.model import Parsed

_SYSCTL = re.compile(r"^(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-/]*)\s*=\s*(?P<value>.*)$")
_PROC = re.compile(r"^/proc/sys/(?P<key>[A-Za-z0-9_./\-]+):(?P<value>.*)$")  # grep . /proc/sys/net/ipv4/tcp_*


def sysctl_lines(text: str) -> list[tuple[int, str, str]] | None:
    """(line, key, value) of every setting, or None when some line is not a sysctl line."""
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith(("#", ";", "$", "sysctl:")):  # comments, prompts, `sysctl -a 2>&1` errors
            continue
        m = _SYSCTL.match(s) or _PROC.match(s)
        if not m:
            return None
        key = m["key"].replace("/", ".") if m.re is _PROC else m["key"]
        out.append((n, key, m["value"].strip()))
    return out or None


def looks_like_sysctl(text: str) -> bool:
    """Every non-comment line is a sysctl setting."""
    return sysctl_lines(text) is not None


def parse_sysctl(text: str, file: str) -> Parsed:
    """The netns sysctls the keepalive model reads, range-checked; a later line wins, as with
    ``sysctl -p``, with a warning when a key is repeated."""
    entries = sysctl_lines(text) or []
    parsed = Parsed(kind="sysctl", file=file, title=f"sysctl lines: {len(entries)} setting(s)",
                    sysctl_lines=len(entries))
    for n, key, value in entries:
        if key not in SYSCTL_RANGES:
            continue
        lo, hi = SYSCTL_RANGES[key]
        if not re.fullmatch(r"-?[0-9]{1,19}", value) or not lo <= int(value) <= hi:
            raise ConfigError(f"{value!r} is rejected by the kernel", file=file, line=n, key=key,
                              allowed=f"integers {lo}..{hi}")
        if key in parsed.sysctl:
            old, old_line = parsed.sysctl[key]
            same = "the same value" if old == int(value) else f"{old} then {value}"
            parsed.warnings.append(f"{key} is set twice ({same}), on lines {old_line} and {n}: `sysctl -p` applies "
                                   f"lines in order, so line {n} ({value}) is the one in effect. If the two lines come "
                                   "from different hosts or pods (two pasted commands), they are different network "
                                   "namespaces: inspect each on its own")
        parsed.sysctl[key] = (int(value), n)
    return parsed

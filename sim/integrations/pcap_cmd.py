"""``inspect CAPTURE.pcap|.pcapng``: recognising a capture, and printing its report.

A capture is recognised by its magic number (so ``tcpdump -w - | python -m sim inspect -`` works)
or by a ``.pcap``/``.pcapng``/``.cap`` name (so a damaged one gets the capture error, not "not
UTF-8 text"). A damaged capture prints the report of what was read before the damage, marked
partial, then one ``error:`` line on stderr, and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import IO

from sim.errors import ConfigError
from sim.integrations.pcap_flows import DEFAULT_MAX_FLOWS
from sim.integrations.pcap_read import (
    ALLOWED_CAPTURE,
    ALLOWED_LINKTYPES,
    LINKTYPES,
    Capture,
    CaptureDamage,
    capture_format,
)
from sim.integrations.verdict import CMDLINE, Settings

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def is_capture(path: str) -> bool:
    """True when ``path`` (``-``: stdin) holds a pcap/pcapng capture or is named like one."""
    if path == "-":
        buf = getattr(sys.stdin, "buffer", None)
        peek = getattr(buf, "peek", None)
        return peek is not None and capture_format(peek(4)[:4]) is not None
    if Path(path).suffix.lower() in CAPTURE_SUFFIXES:
        return True
    try:
        with Path(path).open("rb") as fh:
            return capture_format(fh.read(4)) is not None
    except OSError:
        return False  # parse_file reports it


def inspect_capture_file(args: argparse.Namespace, st: Settings) -> int:
    """Print the capture's report; 0, 2 (damaged: partial report, one error line) or 3 (--fail-on-unsafe)."""
    from sim.integrations.pcap_render import TEXT_FLOWS, render_capture
    from sim.integrations.pcap_report import inspect_capture

    max_flows = DEFAULT_MAX_FLOWS if args.max_flows is None else args.max_flows
    if max_flows < 1:
        raise ConfigError(f"{max_flows} must be >= 1", file=CMDLINE, key="--max-flows", allowed="a whole number >= 1")
    name = "<stdin>" if args.file == "-" else args.file
    fh: IO[bytes]
    try:
        fh = sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=name, allowed=ALLOWED_CAPTURE) from None
    try:
        cap = open_capture(fh, name)
        report = inspect_capture(cap, name, st, max_flows, out=sys.stdout if args.json else None, keep=TEXT_FLOWS)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    if not args.json:
        print(render_capture(report))
    if report["partial"]:
        d = report["capture"]["damage"]
        err = ConfigError(f"{d['problem']} at byte {d['offset']:,}; the report covers the "
                          f"{report['capture']['packets']:,} packets before it and is marked partial",
                          file=name, key="capture")
        sys.stdout.flush()
        print(f"error: {err}", file=sys.stderr)
        return 2
    unsafe = report["summary"].get("unsafe", 0)
    if getattr(args, "fail_on_unsafe", False) and unsafe:
        print(f"inspect: UNSAFE: {unsafe} flow(s) (--fail-on-unsafe)", file=sys.stderr)
        return 3
    return 0


def open_capture(fh: IO[bytes], name: str) -> Capture:
    """The capture in ``fh``, or ConfigError (not a capture, its header cut off, a link type not read)."""
    try:
        cap = Capture(fh)
    except (ValueError, CaptureDamage) as exc:
        raise ConfigError(str(exc), file=name, key="capture", allowed=ALLOWED_CAPTURE) from None
    if cap.format == "pcap" and cap.linktype not in LINKTYPES:
        raise ConfigError(f"link type {cap.linktype} is not read", file=name, key="capture",
                          allowed=ALLOWED_LINKTYPES)
    return cap

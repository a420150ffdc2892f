"""The ``inspect`` and ``recommend`` commands: argument parsing and printing only.

``sim.cli`` wires them in with :func:`add_parsers`; both functions raise
:class:`~sim.errors.ConfigError` for bad input, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sim.errors import ConfigError
from sim.integrations.recommend import EMIT_CHOICES


def add_parsers(sub: Any) -> None:
    """Add the ``inspect`` and ``recommend`` subparsers to an argparse subparsers object."""
    ins = sub.add_parser(
        "inspect", help="decode an EnvoyFilter, config_dump, DestinationRule, mesh config, `ss -nte`/netstat output, "
                        "sysctl lines, or a pcap/pcapng capture",
        description="Print the effective keepalive of each hop in FILE (what unset values fall back to), and with "
                    "--lb / --upstream-lb a verdict against the middlebox on that hop's leg, plus the known traps. "
                    "For a capture (tcpdump -w): per TCP flow the keepalive probes and their cadence, the longest "
                    "idle gap, every RST, retransmission bursts and a verdict against --lb, then a fleet summary.")
    ins.add_argument("file", help="the artefact or capture to read; - reads standard input")
    ins.add_argument("--lb", metavar="PROFILE",
                     help="the middlebox in front of Envoy: judges listener hops, ss/netstat and sysctl input "
                          "(see `python -m sim profiles`)")
    ins.add_argument("--upstream-lb", metavar="PROFILE",
                     help="the middlebox between Envoy and its upstreams: judges cluster hops")
    ins.add_argument("--fail-on-unsafe", action="store_true",
                     help="exit 3 when any verdict is UNSAFE (for CI pipelines)")
    ins.add_argument("--hz", type=int, choices=(100, 250, 300, 1000), default=250,
                     help="kernel HZ, for the timer-wheel lateness (default 250)")
    ins.add_argument("--one-way-delay", default="1ms", metavar="DURATION",
                     help="one-way delay between the LB and the probing socket (default 1ms)")
    ins.add_argument("--json", action="store_true", help="print the report as JSON")
    ins.add_argument("--max-flows", type=int, default=None, metavar="N",
                     help="captures: track at most N TCP flows (default 200000), so memory stays bounded")

    rec = sub.add_parser(
        "recommend", help="the cheapest safe setting from the sweep, as a ready-to-apply manifest",
        description="Take the sweep's recommended setting (results/<config stem>/sweep.json, or a quick internal "
                    "sweep when there is none) and print it as an EnvoyFilter, a DestinationRule and/or sysctl lines.")
    rec.add_argument("config")
    rec.add_argument("--emit", choices=EMIT_CHOICES, required=True, help="what to print")
    rec.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    rec.add_argument("--listener", default="0.0.0.0_8080", help="EnvoyFilter listener name (default 0.0.0.0_8080)")
    rec.add_argument("--port", type=int, default=8080, help="EnvoyFilter listener port (default 8080)")
    rec.add_argument("--namespace", default="istio-system", help="metadata.namespace (default istio-system)")
    rec.add_argument("--host", default="upstream.default.svc.cluster.local",
                     help="DestinationRule spec.host (default upstream.default.svc.cluster.local)")
    rec.add_argument("--results", help="sweep results folder (default results/<config stem>/)")
    rec.add_argument("--quick-sweep", action="store_true", help="ignore saved results and run a quick sweep")
    rec.add_argument("--executor", choices=("serial", "process"), default="process",
                     help="executor for the quick sweep (default process)")
    rec.add_argument("--workers", type=int, default=None, help="processes for the quick sweep")


# ----------------------------------------------------------------------------- inspect
def cmd_inspect(args: argparse.Namespace) -> int:
    """``inspect FILE``: print the report (text or JSON). Exit 0, or 3 with ``--fail-on-unsafe`` when a
    verdict is UNSAFE. Bad input raises ConfigError (exit 2); with ``--json`` it is also printed on
    stdout as ``{"error": {"file", "line", "key", "problem", "allowed"}}`` and the exit code is 2."""
    from sim.integrations.inspect import Settings, check_lb, inspect, parse_one_way_delay, render_text, unsafe_verdicts
    from sim.integrations.parse import parse_file
    from sim.integrations.pcap_cmd import inspect_capture_file, is_capture
    from sim.output import dumps

    try:
        check_lb(args.lb)
        check_lb(getattr(args, "upstream_lb", None), "--upstream-lb")
        st = Settings(lb=args.lb, hz=args.hz, one_way_delay_s=parse_one_way_delay(args.one_way_delay),
                      upstream_lb=getattr(args, "upstream_lb", None))
        if is_capture(args.file):
            return inspect_capture_file(args, st)
        report = inspect(parse_file(args.file), st)
    except ConfigError as exc:
        if not args.json:
            raise
        print(dumps({"error": {"file": exc.file, "line": exc.line, "key": exc.key, "problem": exc.problem,
                               "allowed": exc.allowed}}))
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(dumps(report) if args.json else render_text(report))
    bad = unsafe_verdicts(report)
    if getattr(args, "fail_on_unsafe", False) and bad:
        print(f"inspect: UNSAFE: {', '.join(bad)} (--fail-on-unsafe)", file=sys.stderr)
        return 3
    return 0


# ----------------------------------------------------------------------------- recommend
def cmd_recommend(args: argparse.Namespace) -> int:
    """``recommend CONFIG --emit KIND`` (sim.integrations.recommend)."""
    from sim.integrations.recommend import cmd_recommend as run

    return run(args)

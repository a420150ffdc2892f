"""``python -m sim trace CONFIG (--conn ID | --first-drop) [--leg L] [--at P] [--pcap FILE]``: the
packets of one connection as a tcpdump-like timeline (``sim.metrics.packets``) and, with
``--pcap``, as a capture file (``sim.integrations.pcap_out``).

The model is deterministic for a seed: ``--first-drop`` simulates the run once to find the
connection that was silently dropped first, then simulates that connection's client slot again
with tracing on, and gets the packets it had in the whole run.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from sim.config.load import load_config
from sim.config.resolve import world_spec
from sim.errors import ConfigError
from sim.execution import run_one
from sim.execution.cost import check, estimate_run
from sim.execution.seeds import replication_seed
from sim.execution.simulate import slots_with
from sim.execution.tasks import first_drop, trace_one
from sim.facts.names import CONN_ID_STRIDE
from sim.integrations.pcap_out import NAT_IP, VIP_IP, address_plan, write_pcap
from sim.metrics.packets import has_handshake, lines, render

LEGS = ("downstream", "upstream")
POINTS = ("client", "envoy", "upstream")


def add_parser(sub) -> None:
    """The ``trace`` subparser."""
    tr = sub.add_parser("trace", help="a tcpdump-like timeline of one connection; --pcap writes it as a capture",
                        description="Simulate the config and print every packet of one connection: time, from > to, "
                                    "flags, seq/ack (bytes), length and what caused it.")
    tr.add_argument("config")
    tr.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    tr.add_argument("--conn", metavar="ID", help="the connection id (conn_id in connections.parquet)")
    tr.add_argument("--first-drop", action="store_true", help="the connection that was silently dropped first")
    tr.add_argument("--leg", metavar="LEG",
                    help="downstream (client <-> Envoy) or upstream (Envoy <-> server): that leg's connection of the "
                         "same client slot (with --first-drop: the first drop on that leg)")
    tr.add_argument("--at", metavar="POINT",
                    help="where the capture is taken: client, envoy or upstream (default: the leg's opener)")
    tr.add_argument("--pcap", metavar="FILE", help="also write the packets seen there as a libpcap file")
    tr.add_argument("--replication", type=int, default=0, metavar="N",
                    help="which replication's seed to simulate (default 0)")
    tr.add_argument("--force", action="store_true", help="run even when the cost estimate is over the limits")


@dataclass(frozen=True)
class Choice:
    """The traced connection: its id, leg and the seed of the run it belongs to."""

    conn_id: int
    leg: str
    seed: int


def _usage(problem: str, key: str, allowed: str) -> ConfigError:
    return ConfigError(problem, file="trace", key=key, allowed=allowed)


def choose(loaded, conn: str | None, first: bool, leg: str | None, replication: int) -> Choice:
    """Which connection to trace (errors: ConfigError, one line)."""
    sc = loaded.scenario
    if (conn is None) == (not first):
        raise _usage("give exactly one of them", "--conn/--first-drop", "--conn ID or --first-drop")
    if leg is not None and leg not in LEGS:
        raise _usage(f"unknown leg {leg!r}", "--leg", ", ".join(LEGS))
    if leg == "upstream" and sc.envoy is None:
        raise _usage("the config has no envoy block, so no upstream leg", "--leg", "downstream")
    if replication < 0 or replication >= sc.replications:
        raise _usage(f"replication {replication}", "--replication", f"0 to {sc.replications - 1}")
    seed = replication_seed(sc.seed, replication)
    if first:
        cols = run_one(sc, seed).columns
        i = first_drop(cols, leg)
        if i is None:
            where = f" on the {leg} leg" if leg else ""
            raise ConfigError(f"no connection was silently dropped{where} in this run (seed {seed}, replication "
                              f"{replication})", file=loaded.file, key="--first-drop",
                              allowed="--conn ID, or settings that drop")
        return Choice(int(cols["conn_id"][i]), cols["leg"][i], seed)
    assert conn is not None
    try:
        conn_id = int(conn)
    except ValueError:
        raise _usage(f"not a connection id: {conn!r}", "--conn", "a whole number >= 0") from None
    slot = conn_id // CONN_ID_STRIDE if conn_id >= 0 else -1
    if not 0 <= slot < sc.connections:
        raise _usage(f"no connection {conn_id}: its slot {slot} is not in the run", "--conn",
                     f"ids slot * {CONN_ID_STRIDE} + n, slot 0 to {sc.connections - 1}")
    group = slots_with(sc, slot)
    cols = run_one(sc, seed, slots=group).columns
    if group != [slot]:  # the slot's rows from its Envoy worker's run, or the whole fleet's (a limit)
        keep = [i for i, c in enumerate(cols["conn_id"]) if int(c) // CONN_ID_STRIDE == slot]
        cols = {k: [v[i] for i in keep] for k, v in cols.items()}
    ids = [int(c) for c in cols["conn_id"]]
    if conn_id not in ids:
        raise _usage(f"no connection {conn_id} in this run", "--conn",
                     f"slot {slot} opened {', '.join(map(str, ids[:12]))}" + (" ..." if len(ids) > 12 else ""))
    i = ids.index(conn_id)
    if leg is None or cols["leg"][i] == leg:
        return Choice(conn_id, cols["leg"][i], seed)
    return Choice(_partner(cols, i, leg), leg, seed)


def _partner(cols: dict, i: int, leg: str) -> int:
    """The connection on ``leg`` of row ``i``'s slot that was open alongside it: the first one opened
    while it was open, or else the last one opened before it."""
    opened, closed = cols["opened_at_s"][i], cols["closed_at_s"][i]
    rows = [j for j, g in enumerate(cols["leg"]) if g == leg]
    during = [j for j in rows if opened <= cols["opened_at_s"][j] and not cols["opened_at_s"][j] > closed]
    before = [j for j in rows if cols["opened_at_s"][j] < opened]
    pick = during[0] if during else (before[-1] if before else None)
    if pick is None:
        raise _usage(f"connection {cols['conn_id'][i]} has no {leg} connection alongside it", "--leg",
                     cols["leg"][i])
    return int(cols["conn_id"][pick])


def _ends(spec, leg: str) -> dict[str, str]:
    """The capture points of a leg: POINTS name -> the trace's lane (client = opener)."""
    acceptor = "envoy" if spec.envoy else "upstream"
    if leg == "upstream":
        return {"envoy": "client", "upstream": "server"}
    if leg == "lb_backend":
        return {acceptor: "server"}
    if any(m.terminating for m in spec.lb):
        return {"client": "client"}  # its acceptor is the terminating LB
    return {"client": "client", acceptor: "server"}


def cmd_trace(args: argparse.Namespace) -> int:
    """Print the timeline; with ``--pcap``, write the capture too."""
    loaded = load_config(args.config, args.sets)
    sc = loaded.scenario
    if args.at is not None and args.at not in POINTS:
        raise _usage(f"unknown capture point {args.at!r}", "--at", ", ".join(POINTS))
    if not args.force:
        check(estimate_run(sc), file=loaded.file)
    pick = choose(loaded, args.conn, args.first_drop, args.leg, args.replication)
    spec = world_spec(sc)
    ends = _ends(spec, pick.leg)
    at = args.at or next(iter(ends))
    if at not in ends:
        raise _usage(f"{at} is not an end of the {pick.leg} leg", "--at", ", ".join(ends))
    lane = ends[at]
    trace = trace_one(sc, pick.seed, pick.conn_id)
    seen = lines(trace, lane)
    mbs = spec.upstream_lb if pick.leg == "upstream" else spec.lb
    names = {v: k for k, v in ends.items()} | {"lb": " / ".join(m.name for m in mbs) or "LB"}
    names.setdefault("client", "client" if pick.leg == "downstream" else "LB")
    names.setdefault("server", "server")
    addrs = address_plan(pick.leg, lane, pick.conn_id, spec.envoy is not None, len(mbs))
    shown = {k: f"{names[k]} {ip}:{port}" + (" (the LB's VIP)" if ip == VIP_IP else "")
                                             + (" (after source NAT)" if ip == NAT_IP else "")
             for k, (ip, port) in addrs.items()}
    print(f"# connection {pick.conn_id} ({pick.leg} leg) of {sc.name}, seed {pick.seed} (replication "
          f"{args.replication}); capture at {at}: {shown['client']}, {shown['server']}")
    if args.first_drop:
        print("# the first silent drop of the run; its slot simulated again with tracing on (the model is "
              "deterministic for a seed: the same packets)")
    print("# seq/ack in bytes relative to each side's ISN; every message carries max(its size, 1) bytes")
    print(render(seen, names))
    if args.pcap:
        frames = write_pcap(args.pcap, seen, addrs, has_handshake(trace))
        print(f"# wrote {args.pcap}: {frames} frames as captured at {at}")
    return 0

"""Command line: argument parsing and printing only; the work is in sim.runner / sim.sweep."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from sim.errors import ConfigError

OUTCOME_WORDS = {
    "ok": "fine",
    "closed_idle": "closed by an idle timeout before any drop",
    "reset_on_send": "sent data into the forgotten flow and got an RST (request failed)",
    "reset_on_probe": "its keepalive probe got an RST (detected, no request lost)",
    "timeout_keepalive": "keepalive gave up (ETIMEDOUT)",
    "timeout_retrans": "data hung until ETIMEDOUT",
    "reset_on_expiry": "the LB announced the expiry",
    "zombie": "still believes it is open (zombie)",
    "reset_by_peer": "got an RST from the peer host",
    "closed_after_drop": "closed it itself, after the LB had forgotten it",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim", description="TCP keepalive vs idle-timeout LB simulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="simulate one scenario and print its summary")
    run.add_argument("config")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--out", help="write connections.parquet, summary.json, config.resolved.yaml here")
    run.add_argument("--json", action="store_true", help="print the summary object as JSON")
    sub.add_parser("profiles", help="list middlebox profiles with their parameters and sources")
    return p


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.config.load import load_config
    from sim.output import atomic_write, dumps, resolved_config_yaml, write_parquet
    from sim.runner import run_scenario

    loaded = load_config(args.config, args.sets)
    sc = loaded.scenario
    result = run_scenario(sc)
    if args.out:
        out = Path(args.out)
        write_parquet(result.connections_frame(), out / "connections.parquet")
        atomic_write(out / "summary.json", dumps(result.summary) + "\n")
        atomic_write(out / "config.resolved.yaml", resolved_config_yaml(sc, loaded.raw.get("sweep")))
    if args.json:
        print(dumps(result.summary))
    else:
        print(_human(sc, result))
        if args.out:
            print(f"wrote {args.out}/connections.parquet, summary.json, config.resolved.yaml")
    return 0


def _human(sc, result) -> str:
    from sim.config.schema import lb_list

    s = result.summary
    df = result.connections_frame()
    down = df[df["leg"] == "downstream"]
    lbs = ", ".join(f"{c.profile}" + (f" {c.idle_timeout:g}s" if c.idle_timeout else "") for c in lb_list(sc.lb))
    lines = [
        f"{sc.name}: {sc.connections} connection slots x {sc.replications} replication(s), "
        f"{sc.duration:g} s simulated each; LB: {lbs or 'none'}",
        f"  connections opened (downstream): {s['connections']}   silent drops: {s['silent_drops']} "
        f"({100 * s['silent_drop_rate']:.2f}% of all legs' connections)",
        f"  requests: {s['requests']}   failed: {s['failed_requests']} ({100 * s['failed_request_rate']:.2f}%)"
        f"   hang total: {s['hang_s_total']:.1f} s   in flight at end: {s['requests_in_flight_at_end']}",
    ]
    for side, col in (("client", "client_outcome"), ("server", "server_outcome")):
        counts = down[col].value_counts()
        parts = [f"{n} {OUTCOME_WORDS.get(o, o)}" for o, n in counts.items() if o not in ("ok",)]
        if parts:
            lines.append(f"  {side} side (downstream leg): " + "; ".join(parts))
    if s["silent_drops"]:
        p50, mx = s["detect_s_p50"], s["detect_s_max"]
        lines.append(f"  detection after the drop: median {p50:.1f} s, max {mx:.1f} s; "
                     f"zombie time {s['zombie_s_total']:.0f} s, peak {s['zombies_peak']} zombies at once")
    lines.append(f"  keepalive packets through middleboxes: {s['keepalive_packets']} "
                 f"({s['keepalive_pps']:.3f}/s); LB RSTs: {s['lb_rsts']}; peak active flows: "
                 f"{s['lb_active_flows_peak']}; smallest slack before expiry: {s['min_slack_s']:.3f} s")
    verdict = "SAFE: no silent drops" if s["silent_drops"] == 0 else "UNSAFE: the LB silently dropped connections"
    lines.append(f"  verdict: {verdict}   [{s['run']['events']} events, {s['run']['wall_s']:.2f} s wall]")
    return "\n".join(lines)


def _cmd_profiles(args: argparse.Namespace) -> int:
    from sim.config.profiles import all_profiles

    for name, p in all_profiles().items():
        late = p.late_packet if isinstance(p.late_packet, str) else (
            f"client:{p.late_packet.from_client}/server:{p.late_packet.from_server}")
        rng = p.range_s
        rng_txt = f"{rng[0]:g}-{rng[1]:g}s" if rng else "fixed/unknown"
        print(f"{name:30s} idle {p.idle_timeout_s:>8g}s ({rng_txt:>14s})  on_expiry={p.on_expiry:8s} "
              f"late_packet={late}  [{p.confidence}]")
        print(f"{'':30s} {p.sources[0].url}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _cmd_run, "profiles": _cmd_profiles}[args.cmd](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for users; SIM_DEBUG=1 shows the traceback
        if os.environ.get("SIM_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set SIM_DEBUG=1 for a traceback)", file=sys.stderr)
        return 1

"""Command line: argument parsing and printing only; the work is in sim.execution (simulating) and
sim.report (verdicts, report.md)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from sim.errors import ConfigError, one_line


def _parser() -> argparse.ArgumentParser:
    from sim import __version__
    from sim.cli_help import EXAMPLES

    p = argparse.ArgumentParser(prog="python -m sim", description="TCP keepalive vs idle-timeout LB simulator",
                                epilog=EXAMPLES[""], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"keepalive-sim {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="simulate one scenario and print its summary")
    run.add_argument("config", help="the config file; - reads it from standard input")
    run.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    run.add_argument("--out", help="write connections.parquet, summary.json, config.resolved.yaml here")
    run.add_argument("--json", action="store_true", help="print the summary object as JSON")
    run.add_argument("--workers", type=int, default=None,
                     help="split the fleet over N processes (identical results; for large fleets; at most the cores; "
                          "default 1, with --executor dask the cores)")
    run.add_argument("--executor", choices=("serial", "process", "dask"), default="process",
                     help="dask: the fleet in chunks over a Dask cluster, each chunk's rows streamed to --out "
                          "(bounded memory; fleets without shared state)")
    run.add_argument("--scheduler", help="Dask scheduler address (default: a LocalCluster of --workers processes)")
    _common(run)
    sw = sub.add_parser("sweep", help="run the config's grid x replications; print which settings are safe")
    sw.add_argument("config")
    sw.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    sw.add_argument("--out", help="results folder (default results/<config name>/)")
    sw.add_argument("--workers", type=int, default=None,
                    help="processes (default: the cores; at most the cores and the runs)")
    sw.add_argument("--executor", choices=("serial", "process", "dask"), default="process")
    sw.add_argument("--scheduler", help="Dask scheduler address (default: a LocalCluster)")
    sw.add_argument("--resume", action="store_true",
                    help="keep the finished runs whose settings are unchanged and run only the rest")
    sw.add_argument("--json", action="store_true", help="print points and the recommendation as JSON")
    sw.add_argument("--fail-on-unsafe", action="store_true", help="exit 3 if the config's own setting is unsafe")
    sw.add_argument("--no-report", action="store_true", help="skip report.md and plots")
    sw.add_argument("--keep", choices=("all", "summary"), default="all",
                    help="summary: once merged, drop connections.parquet, series.parquet and parts/ "
                         "(then --resume starts afresh)")
    sw.add_argument("--method", choices=("simulate", "analytic"), default="simulate",
                    help="analytic: closed-form screening of deterministic points (exact timers, fixed gaps); "
                         "points outside its scope or within 1 s of the boundary are simulated")
    _common(sw)
    rp = sub.add_parser("report", help="(re)build report.md and plots from a results folder")
    rp.add_argument("dir")
    sub.add_parser("profiles", help="list middlebox profiles with their parameters and sources")
    from sim.integrations.commands import add_parsers

    add_parsers(sub)
    from sim.integrations.trace import add_parser as add_trace

    add_trace(sub)
    va = sub.add_parser("validate", help="replay scaled cases on the real Linux stack and compare")
    va.add_argument("--kernel", action="store_true", required=True, help="use network namespaces + nftables")
    va.add_argument("--hz", type=int, choices=(100, 250, 300, 1000), help="kernel HZ (default: detected)")
    va.add_argument("--json", action="store_true")
    for name, cmd in sub.choices.items():
        cmd.epilog = EXAMPLES.get(name, cmd.epilog)
        cmd.formatter_class = argparse.RawDescriptionHelpFormatter
    return p


def _common(cmd: argparse.ArgumentParser) -> None:
    """Flags shared by run and sweep."""
    cmd.add_argument("--quiet", action="store_true", help="no progress on stderr")
    cmd.add_argument("--force", action="store_true",
                     help="run even when the cost estimate is over the limits (docs/performance.md)")
    cmd.add_argument("--overwrite", action="store_true",
                     help="write into an --out folder that holds other files")
    cmd.add_argument("--reference", action="store_true",
                     help="the reference engine: every work-saving shortcut off (docs/model.md); the same records, "
                          "more events, slower")


def _shortcuts(args: argparse.Namespace):
    """The engine's shortcuts for ``--reference`` (None: the default, all on)."""
    from sim.spec import Shortcuts

    return Shortcuts.none() if getattr(args, "reference", False) else None


def _load(config: str, sets: list[str]):
    """The config from a file, or from standard input for ``-``."""
    from sim.config.load import load_config, load_config_text
    from sim.config.yamlio import MAX_BYTES

    if config != "-":
        return load_config(config, sets)
    data = sys.stdin.buffer.read(MAX_BYTES + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file="<stdin>", allowed="UTF-8 encoded YAML") from None
    return load_config_text(text, "<stdin>", sets)


def _cmd_run(args: argparse.Namespace) -> int:
    from sim.execution.cost import check, estimate_run
    from sim.execution.runner import run_scenario
    from sim.execution.sweep import cap_workers
    from sim.output import dumps
    from sim.results.folder import claim_folder, write_run

    loaded = _load(args.config, args.sets)
    sc = loaded.scenario
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}", allowed="1 or more")
    if args.executor == "dask":
        from sim.execution.dask_run import check_splittable

        check_splittable(sc)  # before anything else: one line, exit 2
    if not args.force:
        check(estimate_run(sc, streamed=args.executor == "dask"), file=loaded.file)
    out = Path(args.out) if args.out else None
    if out is not None:  # before simulating: a folder that cannot take the results is refused now
        claim_folder(out, "run", sc.name, args.overwrite)
    if args.executor == "dask":
        from sim.execution.dask_run import part_files, run_on_dask

        parts = out / "parts" if out is not None else None
        # a LocalCluster's processes, at most the cores (a scheduler's cluster has its own workers)
        workers = args.workers if args.scheduler or args.workers is None else cap_workers(
            args.workers, sc.connections, "run", "slot")
        result = run_on_dask(sc, parts, workers, args.scheduler, args.quiet, _shortcuts(args))
        if out is not None:
            write_run(out, part_files(out / "parts"), result.summary, sc, loaded.raw.get("sweep"))
    else:
        requested = 1 if args.executor == "serial" else (args.workers or 1)
        workers = cap_workers(requested, sc.connections, "run", "slot") if requested > 1 else 1
        result = run_scenario(sc, workers=workers, quiet=args.quiet, shortcuts=_shortcuts(args))
        if out is not None:
            write_run(out, result.connections_frame(), result.summary, sc, loaded.raw.get("sweep"))
    if args.json:
        print(dumps(result.summary))
    else:
        from sim.report.run_text import run_text

        print(run_text(sc, result))
        if args.out:
            print(f"wrote {args.out}/connections.parquet, summary.json, config.resolved.yaml")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from sim.config.load import load_config
    from sim.execution.sweep import Interrupted, run_sweep
    from sim.output import dumps
    from sim.report.markdown import build_report
    from sim.report.sweep_summary import config_params, summarize_sweep
    from sim.results.store import prune

    loaded = load_config(args.config, args.sets)
    if args.method == "analytic":
        return _analytic_text(loaded, args.json, args.force)
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}", allowed="1 or more")
    out = Path(args.out) if args.out else Path("results") / Path(args.config).stem
    own_safe = _own_setting_safe(loaded)
    try:
        stored = run_sweep(loaded, out, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
                           resume=args.resume, quiet=args.quiet or args.json, force=args.force,
                           overwrite=args.overwrite, shortcuts=_shortcuts(args))
    except Interrupted as exc:
        summarize_sweep(exc.stored, own_safe)  # summary.csv and sweep.json of what finished
        again = shlex.join(["python", "-m", "sim", *args.argv, *([] if args.resume else ["--resume"])])
        print(f"interrupted: {exc.done} of {exc.total} runs done, merged into {out}/points.parquet; "
              f"finish with: {again}", file=sys.stderr)
        return 130
    res = summarize_sweep(stored, own_safe)
    report = None
    if not args.no_report and not res.points.empty:
        report = build_report(out)
    if args.keep == "summary":
        prune(out)
    if args.json:
        keys = res.knobs + res.conditions
        pts = []
        for _, r in res.points.iterrows():
            d = r.to_dict()
            pts.append(config_params({"params": {k: d.pop(k) for k in keys}, **d}))
        print(dumps({"points": pts, "recommended": config_params(res.recommended)}))
    else:
        from sim.report.markdown import capacity_device

        print(_sweep_text(res, capacity_device(loaded.scenario)))
        print(f"results: {out}/" + (f"  report: {report}" if report else ""))
    if res.failed:
        print(f"error: {len(res.failed)} point(s) failed: {', '.join(res.failed)} "
              f"(see {out}/parts/*.error.parquet; rerun with --resume)", file=sys.stderr)
        return 1
    if args.fail_on_unsafe and res.base_safe is False:
        print("unsafe: the config's own setting has silent drops or rejected connects (see the why column)",
              file=sys.stderr)
        return 3
    return 0


def _own_setting_safe(loaded):
    """For the sweep's ``base_safe`` (--fail-on-unsafe) when the config's own knob setting is not a
    grid point: simulate it and tell whether it had no silent drop and no rejected connect."""
    def safe() -> bool:
        from sim.execution.runner import run_scenario
        from sim.report.verdict import summary_why

        return not summary_why(run_scenario(loaded.scenario, keep_records=False).summary)

    return safe


def _analytic_text(loaded, as_json: bool, force: bool = False) -> int:
    from sim.execution.analytic import screen
    from sim.execution.cost import check, estimate_sweep
    from sim.output import dumps
    from sim.report.fmt import fmt, fmt_param

    if not force:  # the points it cannot screen are simulated
        check(estimate_sweep(loaded, 1), file=loaded.file)
    rows = screen(loaded)
    if as_json:
        print(dumps({"points": rows}))
        return 0
    keys = list(rows[0]["params"]) if rows else []
    heads = [*keys, "method", "safe", "slack_s", "first late packet", "outcome", "detect_s"]
    table = [[fmt_param(r["params"][k]) for k in keys] + [r["method"], "yes" if r["safe"] else "NO",
             fmt(r["min_slack_s"]), r["first_late_packet"] or "-", r["outcome"] or "-", fmt(r["detect_s"])]
             for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(heads)]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True)))
    for t in table:
        print("  ".join(c.rjust(w) for c, w in zip(t, widths, strict=True)))
    return 0


def _sweep_text(res, device: str = "the client-facing LB") -> str:
    """The verdict table and the recommendation; ``device``: the capacity LB that ka_pps/1k counts."""
    from sim.report.classes import class_lines
    from sim.report.fmt import fmt, fmt_param, recommendation_text
    from sim.report.verdict import failure_split

    knobs = res.knobs or ["point_id"]
    cols = ["safe", "silent_drops", "min_slack_s", "predicted_margin_s", "p_drop_upper", "ka_pps_per_1000",
            "failed_requests"]
    heads = [*knobs, "safe", "drops", "slack_s", "pred_margin_s", "p_drop<=", "ka_pps/1k", "failed", "why"]
    if "expected_drops_per_day" in res.table:  # a sampled fleet: the fleet-day estimate and its interval
        cols.insert(2, "expected_drops_per_day")
        heads.insert(len(knobs) + 2, "drops/day [95%]")
    rows = [[fmt_param(r[k]) for k in knobs] + [("yes" if r["safe"] else "NO")]
            + [fmt(r[c]) if c != "expected_drops_per_day" else
               f"{fmt(r[c])} {fmt(r.get('expected_drops_per_day_ci95'))}" for c in cols[1:]]
            + ["; ".join(w for w in (r.get("why"), failure_split(r)) if w) or "-"]
            for _, r in res.table.iterrows()]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(heads)]
    lines = []
    if res.conditions:
        lines.append(f"safe = no silent drop and no rejected connect under every condition: "
                     f"{', '.join(res.conditions)}")
    lines.append("  ".join(h.rjust(w) if i < len(heads) - 1 else h
                           for i, (h, w) in enumerate(zip(heads, widths, strict=True))))
    for row in rows:
        lines.append("  ".join(c.rjust(w) if i < len(row) - 1 else c
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    lines.append(f"ka_pps/1k: keepalive packets/s per 1,000 connections at {device}; why: failed requests by reason, "
                 "preceded by what made a setting unsafe: silent drops and/or rejected connects (a full table, "
                 "no port, connect_timeout, connect_refused)")
    lines += [*class_lines(res.table, res.knobs), recommendation_text(res.recommended, bool(res.knobs), device)]
    return "\n".join(lines)


def _cmd_report(args: argparse.Namespace) -> int:
    from sim.report.markdown import build_report

    print(build_report(Path(args.dir)))
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from sim.testbed.validate import cleanup, main_validate

    try:
        return main_validate(args.hz, args.json)
    finally:
        cleanup()


def _cmd_profiles(args: argparse.Namespace) -> int:
    from sim.config.profiles import all_profiles

    for name, p in all_profiles().items():
        late = p.late_packet if isinstance(p.late_packet, str) else (
            f"client:{p.late_packet.from_client}/server:{p.late_packet.from_server}")
        rng = p.range_s
        rng_txt = f"{rng[0]:g}-{rng[1]:g}s" if rng else "fixed/unknown"
        print(f"{name:30s} idle {p.idle_timeout_s:>8g}s ({rng_txt:>14s})  on_expiry={p.on_expiry:8s} "
              f"late_packet={late}  [{p.confidence}]" + (f"  {_ports_text(p.ports)}" if p.ports else ""))
        print(f"{'':30s} {p.sources[0].url}")
    return 0


def _ports_text(ports) -> str:
    """A profile's port budget in words (``profiles``)."""
    if ports.limit is not None:
        size = f"ports {ports.limit}"
    else:
        rows, low = [], 1
        for up_to, n in ports.limit_by_pool or ():
            rows.append(f"{low}-{up_to}: {n}")
            low = up_to + 1
        size = f"ports by pool size ({', '.join(rows)}; beyond: lb.ports.limit required)"
    reuse = f", reuse {ports.reuse}" if ports.reuse not in (None, 0, "0s") else ""
    return f"{size} per {ports.per}{reuse}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    try:
        from sim.integrations.commands import cmd_inspect, cmd_recommend
        from sim.integrations.trace import cmd_trace

        cmds = {"run": _cmd_run, "sweep": _cmd_sweep, "report": _cmd_report, "profiles": _cmd_profiles,
                "validate": _cmd_validate, "inspect": cmd_inspect, "recommend": cmd_recommend, "trace": cmd_trace}
        code = cmds[args.cmd](args)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
        return code
    except BrokenPipeError:
        # `python -m sim sweep --json | head`: the reader has gone; stop quietly, as SIGPIPE would
        _silence_stdout()
        return 141
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - one line for users; SIM_DEBUG=1 shows the traceback
        if os.environ.get("SIM_DEBUG"):
            raise
        print(f"internal error: {type(exc).__name__}: {one_line(str(exc), 600)} (set SIM_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's own flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass

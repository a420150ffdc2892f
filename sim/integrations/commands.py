"""The ``inspect`` and ``recommend`` commands: argument parsing and printing only.

``sim.cli`` wires them in with :func:`add_parsers`; both functions raise
:class:`~sim.errors.ConfigError` for bad input, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim.errors import ConfigError

EMIT_CHOICES = ("envoyfilter", "destinationrule", "sysctl", "all")


def add_parsers(sub: Any) -> None:
    """Add the ``inspect`` and ``recommend`` subparsers to an argparse subparsers object."""
    ins = sub.add_parser(
        "inspect", help="decode an EnvoyFilter, config_dump, DestinationRule, mesh config, `ss -nte`/netstat output "
                        "or sysctl lines",
        description="Print the effective keepalive of each hop in FILE (what unset values fall back to), and with "
                    "--lb / --upstream-lb a verdict against the middlebox on that hop's leg, plus the known traps.")
    ins.add_argument("file", help="the artefact to read; - reads standard input")
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
    from sim.output import dumps

    try:
        check_lb(args.lb)
        check_lb(getattr(args, "upstream_lb", None), "--upstream-lb")
        st = Settings(lb=args.lb, hz=args.hz, one_way_delay_s=parse_one_way_delay(args.one_way_delay),
                      upstream_lb=getattr(args, "upstream_lb", None))
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
@dataclass
class Target:
    """The socket the recommended setting is for, resolved: seconds for idle/interval, ms for the
    user timeout."""

    label: str  # "envoy listener", "envoy upstream", "client", "upstream server"
    enabled: bool
    idle: int
    interval: int
    count: int
    user_timeout_ms: int


def target_socket(sc: Any, params: dict[str, Any]) -> Target:
    """Which socket the recommendation is about (the hop its swept keys touch; otherwise the server
    side facing the client-facing LB), with unset values filled from that host's sysctls (R1)."""
    envoy = sc.envoy

    def touched(prefix: str) -> bool:
        return any(k == prefix or k.startswith(prefix + ".") for k in params)

    sides: dict[str, tuple[Any, Any, float]] = {
        "client": (sc.client.keepalive, sc.client.kernel, sc.client.user_timeout),
        "upstream server": (sc.upstream.keepalive, sc.upstream.kernel, sc.upstream.user_timeout),
    }
    if envoy:
        sides["envoy listener"] = (envoy.listener.keepalive, envoy.kernel, envoy.listener.user_timeout)
        sides["envoy upstream"] = (envoy.upstream.keepalive, envoy.kernel, envoy.upstream.user_timeout)
    order = [("envoy.listener", "envoy listener"), ("envoy.upstream", "envoy upstream"), ("client", "client"),
             ("upstream", "upstream server")]
    label = next((lab for prefix, lab in order if lab in sides and touched(prefix)), None)
    if label is None:
        label = "envoy listener" if envoy else "upstream server"
        if not sides[label][0].enabled and sc.client.keepalive.enabled:
            label = "client"
    ka, kernel, user_timeout = sides[label]
    _, _, sysctl = sc.kernel.merged(kernel).resolved()
    return Target(label, ka.enabled, ka.idle or sysctl["net.ipv4.tcp_keepalive_time"],
                  ka.interval or sysctl["net.ipv4.tcp_keepalive_intvl"],
                  ka.count or sysctl["net.ipv4.tcp_keepalive_probes"], int(round(user_timeout * 1000)))


def find_recommendation(args: argparse.Namespace, loaded: Any) -> tuple[dict[str, Any] | None, str]:
    """(recommended row or None when the config has no sweep block, where it came from). Saved
    results are used when they are for this config file and these ``--set`` values; otherwise a quick
    sweep of the config's own sweep block (1 replication) runs in a temporary folder."""
    from sim.config.load import load_config, sweep_axes
    from sim.sweep.run import run_sweep

    knobs, _ = sweep_axes(loaded.raw.get("sweep"), loaded.file, loaded.lines)
    if not knobs:
        return None, "the config has no sweep knobs: its own setting"
    results = Path(args.results) if args.results else Path("results") / Path(args.config).stem
    meta_path = results / "sweep.json"
    if meta_path.exists() and not args.quick_sweep:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"unreadable sweep results: {exc}", file=str(meta_path),
                              allowed="a sweep.json written by `python -m sim sweep`, or --quick-sweep") from None
        same = (Path(str(meta.get("config_file", ""))).name == Path(args.config).name
                and list(meta.get("sets") or []) == list(args.sets) and list(meta.get("knobs") or []) == list(knobs))
        if same:
            rec = meta.get("recommended")
            if rec is None:
                raise ConfigError("none of the swept settings is safe under every condition", file=str(meta_path),
                                  key="recommended", allowed="widen the sweep grid and rerun `python -m sim sweep`")
            where = str(meta_path)
            if Path(args.config).exists() and Path(args.config).stat().st_mtime > meta_path.stat().st_mtime:
                print(f"warning: {meta_path} is older than {args.config}; rerun the sweep or use --quick-sweep",
                      file=sys.stderr)
                where += " (older than the config)"
            return rec, where
    print(f"recommend: no matching {meta_path}; running a quick sweep of {args.config} (1 replication)...",
          file=sys.stderr)
    quick = load_config(args.config, [*args.sets, "replications=1"])
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}", file="<command line>", allowed="1 or more")
    with tempfile.TemporaryDirectory(prefix="sim-recommend-") as tmp:
        res = run_sweep(quick, Path(tmp), executor=args.executor, workers=args.workers, quiet=True, connections=False)
    if res.failed:
        raise RuntimeError(f"{len(res.failed)} sweep point(s) failed in the quick sweep")
    if res.recommended is None:
        raise ConfigError("none of the swept settings is safe under every condition (quick sweep)", file=args.config,
                          key="sweep", allowed="widen the sweep grid")
    return res.recommended, "a quick internal sweep (1 replication)"


def _fmt(v: Any) -> str:
    if v is False:
        return "off"
    if v is True:
        return "on"
    if isinstance(v, float):
        return f"{v:.3g}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def cmd_recommend(args: argparse.Namespace) -> int:
    """``recommend CONFIG --emit KIND``: print the manifest(s). Exit 0; bad input raises ConfigError."""
    from sim import __version__
    from sim.config.load import load_config, with_values
    from sim.config.schema import lb_list
    from sim.integrations import emit

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}", file="<command line>", allowed="1..65535")
    loaded = load_config(args.config, args.sets)
    rec, origin = find_recommendation(args, loaded)
    params = dict(rec["params"]) if rec else {}
    sc = with_values(loaded, params)
    t = target_socket(sc, params)
    if not t.enabled:
        raise ConfigError(f"the recommended setting leaves keepalive off on the {t.label} socket: nothing to emit",
                          file=args.config, allowed="a sweep whose safe settings enable keepalive")
    ka = emit.EmitKeepalive(t.idle, t.interval, t.count, t.user_timeout_ms)

    command = f"python -m sim recommend {args.config} --emit {args.emit}"
    lbs = ", ".join(f"{c.profile}" + (f" {c.idle_timeout:g} s" if c.idle_timeout else "") for c in lb_list(sc.lb))
    up_lbs = ", ".join(c.profile for c in lb_list(sc.upstream.lb))
    header = [f"generated by `{command}` (keepalive-sim {__version__})"]
    if rec:
        chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        header.append(f"recommended {chosen}, from {origin}: safe under every swept condition; observed slack "
                      f"{_fmt(rec.get('min_slack_s'))} s, predicted margin {_fmt(rec.get('predicted_margin_s'))} s, "
                      f"{_fmt(rec.get('ka_pps_per_1000'))} keepalive pkt/s per 1k connections")
    else:
        header.append(f"{origin} (no sweep ran; check it with `python -m sim sweep`)")
    header.append(f"keepalive for the {t.label} sockets: {t.idle}/{t.interval}/{t.count} (TCP_KEEPIDLE {t.idle} s, "
                  f"TCP_KEEPINTVL {t.interval} s, TCP_KEEPCNT {t.count})"
                  + (f", TCP_USER_TIMEOUT {t.user_timeout_ms} ms" if t.user_timeout_ms else ""))
    if lbs:
        leg = "client <-> Envoy" if sc.envoy else "client <-> server"
        header.append(f"middlebox on the {leg} leg: {lbs}")
    if up_lbs:
        header.append(f"middlebox on the Envoy <-> upstream leg: {up_lbs}")

    parts = []
    kinds = ("envoyfilter", "destinationrule", "sysctl") if args.emit == "all" else (args.emit,)
    for kind in kinds:
        if kind == "envoyfilter":
            notes = [f"applies to the GATEWAY listener {args.listener} (port {args.port}) of the gateways in namespace "
                     f"{args.namespace}; add spec.workloadSelector to narrow it.",
                     "Restart the gateway pods after applying (before envoy PR #23189 a listener update changing "
                     "socket_options was ignored), then check the accepted connections:",
                     f"  kubectl exec GATEWAY_POD -- ss -nteo sport = :{args.port} | python -m sim inspect -"]
            if t.label != "envoy listener":
                notes.insert(0, f"WARNING: the recommended setting is for the {t.label} sockets; this EnvoyFilter sets "
                                "it on Envoy's listener, which only covers the client <-> Envoy leg.")
            parts.append(emit.envoyfilter(ka, name=emit.k8s_name(sc.name, "listener-keepalive"),
                                          namespace=args.namespace, listener=args.listener, port=args.port,
                                          header=[*header, *notes]))
        elif kind == "destinationrule":
            notes = [f"applies to Envoy's upstream connections to {args.host} only (set --host); it does not touch "
                     "client -> gateway connections."]
            if t.label != "envoy upstream" and lbs:
                notes.insert(0, f"WARNING: {lbs} sits on the client-facing leg; a DestinationRule does not protect it. "
                                "Use --emit envoyfilter for that leg.")
            parts.append(emit.destinationrule(ka, name=emit.k8s_name(sc.name, "upstream-keepalive"),
                                              namespace=args.namespace, host=args.host,
                                              header=[*(header if args.emit != "all" else []), *notes]))
        else:
            notes = [f"sysctls for the network namespace of the pod that owns the {t.label} sockets: they are per "
                     "netns (Linux >= 4.5), so setting them on the node does nothing for pods.",
                     "They apply only to sockets with SO_KEEPALIVE on and no per-socket TCP_KEEP* values: the app "
                     "(or Envoy) must still enable SO_KEEPALIVE.",
                     "Apply inside the pod's netns: nsenter -t PID -n sysctl -p FILE, or use the securityContext "
                     "below."]
            text = emit.sysctl(ka, header=[*(header if args.emit != "all" else []), *notes])
            if args.emit == "all":  # keep the whole output valid YAML for kubectl: sysctls as comments
                text = "".join(ln if ln.startswith("#") else f"# {ln}" for ln in text.splitlines(keepends=True))
            parts.append(text)
    print("---\n".join(parts), end="")
    return 0

"""``recommend``: the sweep's cheapest safe setting as ready-to-apply manifests, one per hop.

Keepalive is hop by hop, so each manifest carries the setting of its own sockets at the recommended
point: the EnvoyFilter the Envoy listener's (client-facing leg, ``lb``), the DestinationRule Envoy's
upstream (cluster) sockets' (``upstream.lb``), and the sysctl lines those of the socket the sweep's
knobs touch. Each header quotes the predicted margin against the middlebox on that hop's own leg.
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
#: which hop each manifest configures
HOP_OF = {"envoyfilter": "envoy listener", "destinationrule": "envoy upstream"}


@dataclass
class Target:
    """One hop's sockets at the recommended point, resolved: seconds for idle/interval, ms for the
    user timeout (unset values filled from that host's sysctls, R1)."""

    label: str  # "envoy listener", "envoy upstream", "client", "upstream server"
    enabled: bool
    idle: int
    interval: int
    count: int
    user_timeout_ms: int
    hz: int = 250  # the kernel HZ of that host as configured (before any swept condition)


def hop_target(sc: Any, label: str) -> Target:
    """The keepalive of one hop's sockets in scenario ``sc``."""
    sides: dict[str, tuple[Any, Any, float]] = {
        "client": (sc.client.keepalive, sc.client.kernel, sc.client.user_timeout),
        "upstream server": (sc.upstream.keepalive, sc.upstream.kernel, sc.upstream.user_timeout),
    }
    if sc.envoy:
        sides["envoy listener"] = (sc.envoy.listener.keepalive, sc.envoy.kernel, sc.envoy.listener.user_timeout)
        sides["envoy upstream"] = (sc.envoy.upstream.keepalive, sc.envoy.kernel, sc.envoy.upstream.user_timeout)
    ka, kernel, user_timeout = sides[label]
    hz, _, sysctl = sc.kernel.merged(kernel).resolved()
    return Target(label, ka.enabled, ka.idle or sysctl["net.ipv4.tcp_keepalive_time"],
                  ka.interval or sysctl["net.ipv4.tcp_keepalive_intvl"],
                  ka.count or sysctl["net.ipv4.tcp_keepalive_probes"], int(round(user_timeout * 1000)), hz)


def target_socket(sc: Any, params: dict[str, Any]) -> Target:
    """The socket the sweep's knobs are about (the first hop their keys touch; otherwise the server
    side facing the client-facing LB): what the sysctl lines are for."""
    def touched(prefix: str) -> bool:
        return any(k == prefix or k.startswith(prefix + ".") for k in params)

    order = [("envoy.listener", "envoy listener"), ("envoy.upstream", "envoy upstream"), ("client", "client"),
             ("upstream", "upstream server")]
    label = next((lab for prefix, lab in order if (sc.envoy or "envoy" not in lab) and touched(prefix)), None)
    if label is None:
        label = "envoy listener" if sc.envoy else "upstream server"
        if not hop_target(sc, label).enabled and sc.client.keepalive.enabled:
            label = "client"
    return hop_target(sc, label)


def hop_margin_s(sc: Any, label: str) -> tuple[float | None, str]:
    """(predicted margin, middleboxes) of one hop's keepalive against the middleboxes on its own leg."""
    from sim.config.profiles import middlebox_spec
    from sim.config.schema import lb_list
    from sim.report.verdict import hop_margin

    upstream_leg = label == "envoy upstream" or (label == "upstream server" and sc.envoy is not None)
    chain = lb_list(sc.upstream.lb if upstream_leg else sc.lb)
    names = ", ".join(f"{c.profile} {middlebox_spec(c).idle_timeout_s:g} s" for c in chain)
    return (hop_margin(sc, chain, label) if chain else None), names


def find_recommendation(args: argparse.Namespace, loaded: Any) -> tuple[dict[str, Any] | None, str]:
    """(recommended row or None when the config has no sweep block, where it came from). Saved
    results are used when they are for this config file and these ``--set`` values; otherwise a quick
    sweep of the config's own sweep block (1 replication) runs in a temporary folder."""
    from sim.config.load import load_config, sweep_axes
    from sim.execution.sweep import run_sweep
    from sim.report.sweep_summary import summarize_sweep

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
        # base_safe is not needed here: no simulation of the config's own setting (own_setting_safe)
        res = summarize_sweep(run_sweep(quick, Path(tmp), executor=args.executor, workers=args.workers, quiet=True,
                                        connections=False))
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


def _describe(t: Target, margin: float | None, mbs: str) -> list[str]:
    lines = [f"keepalive for the {t.label} sockets: {t.idle}/{t.interval}/{t.count} (TCP_KEEPIDLE {t.idle} s, "
             f"TCP_KEEPINTVL {t.interval} s, TCP_KEEPCNT {t.count})"
             + (f", TCP_USER_TIMEOUT {t.user_timeout_ms} ms" if t.user_timeout_ms else "")]
    if mbs:
        lines.append(f"middlebox on this hop's leg: {mbs}; predicted margin {_fmt(margin)} s at HZ={t.hz} as "
                     "configured (its idle timeout minus the latest a probe can reach it, timer-wheel lateness "
                     "included; the point's margin above covers every swept condition)"
                     if margin is not None else f"middlebox on this hop's leg: {mbs}")
    else:
        lines.append("no middlebox on this hop's leg in the config")
    return lines


def cmd_recommend(args: argparse.Namespace) -> int:
    """``recommend CONFIG --emit KIND``: print the manifest(s). Exit 0; bad input raises ConfigError."""
    from sim import __version__
    from sim.config.load import load_config, with_values
    from sim.integrations import emit
    from sim.results.load import config_value

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}", file="<command line>", allowed="1..65535")
    loaded = load_config(args.config, args.sets)
    rec, origin = find_recommendation(args, loaded)
    # mappings are stored canonically as JSON text (sweep.json), the config takes them as mappings
    params = {k: config_value(v) for k, v in rec["params"].items()} if rec else {}
    sc = with_values(loaded, params)
    kinds = ("envoyfilter", "destinationrule", "sysctl") if args.emit == "all" else (args.emit,)
    targets = {k: (hop_target(sc, HOP_OF[k]) if k in HOP_OF and sc.envoy else target_socket(sc, params))
               for k in kinds}
    if args.emit != "all":
        t = targets[args.emit]
        if args.emit in HOP_OF and not sc.envoy:
            raise ConfigError(f"the config has no Envoy: a {args.emit} has nothing to configure", file=args.config,
                              allowed="--emit sysctl")
        if not t.enabled:
            raise ConfigError(f"the recommended setting leaves keepalive off on the {t.label} sockets: nothing to "
                              f"emit as a {args.emit}", file=args.config,
                              allowed=", ".join(k for k in EMIT_CHOICES[:3] if k != args.emit) + " for another hop")

    command = f"python -m sim recommend {args.config} --emit {args.emit}"
    header = [f"generated by `{command}` (keepalive-sim {__version__})"]
    if rec:
        chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
        header.append(f"recommended {chosen}, from {origin}: safe under every swept condition; observed slack "
                      f"{_fmt(rec.get('min_slack_s'))} s over every middlebox, predicted margin "
                      f"{_fmt(rec.get('predicted_margin_s'))} s (the tightest leg), "
                      f"{_fmt(rec.get('ka_pps_per_1000'))} keepalive pkt/s per 1k connections at the client-facing LB")
    else:
        header.append(f"{origin} (no sweep ran; check it with `python -m sim sweep`)")

    parts: list[str] = []  # the manifests, in --emit order
    skipped: list[str] = []
    for kind in kinds:
        t = targets[kind]
        margin, mbs = hop_margin_s(sc, t.label)
        if kind in HOP_OF and (not sc.envoy or not t.enabled):
            why = "the config has no Envoy" if not sc.envoy else f"keepalive is off on the {t.label} sockets"
            skipped.append(f"no {kind}: {why} at the recommended setting")
            continue
        ka = emit.EmitKeepalive(t.idle, t.interval, t.count, t.user_timeout_ms)
        own = [*header, *_describe(t, margin, mbs)] if (args.emit != "all" or not parts) else _describe(t, margin, mbs)
        if kind == "envoyfilter":
            notes = [f"applies to the GATEWAY listener {args.listener} (port {args.port}) of the gateways in namespace "
                     f"{args.namespace}; add spec.workloadSelector to narrow it. It covers the client <-> Envoy leg.",
                     "Restart the gateway pods after applying (before envoy PR #23189 a listener update changing "
                     "socket_options was ignored), then check the accepted connections:",
                     f"  kubectl exec GATEWAY_POD -- ss -nteo sport = :{args.port} | python -m sim inspect -"]
            parts.append(emit.envoyfilter(ka, name=emit.k8s_name(sc.name, "listener-keepalive"),
                                          namespace=args.namespace, listener=args.listener, port=args.port,
                                          header=[*own, *notes]))
        elif kind == "destinationrule":
            notes = [f"applies to Envoy's upstream connections to {args.host} only (set --host): the Envoy <-> "
                     "upstream leg. It does not touch client -> gateway connections."]
            parts.append(emit.destinationrule(ka, name=emit.k8s_name(sc.name, "upstream-keepalive"),
                                              namespace=args.namespace, host=args.host, header=[*own, *notes]))
        else:
            if not t.enabled:
                skipped.append(f"no sysctl lines: keepalive is off on the {t.label} sockets at the recommended setting")
                continue
            notes = [f"sysctls for the network namespace of the pod that owns the {t.label} sockets: they are per "
                     "netns (Linux >= 4.5), so setting them on the node does nothing for pods.",
                     "They apply only to sockets with SO_KEEPALIVE on and no per-socket TCP_KEEP* values: the app "
                     "(or Envoy) must still enable SO_KEEPALIVE.",
                     "Apply inside the pod's netns: nsenter -t PID -n sysctl -p FILE, or use the securityContext "
                     "below."]
            text = emit.sysctl(ka, header=[*own, *notes])
            if args.emit == "all":  # keep the whole output valid YAML for kubectl: sysctls as comments
                text = "".join(ln if ln.startswith("#") else f"# {ln}" for ln in text.splitlines(keepends=True))
            parts.append(text)
    if not parts:  # --emit all: say why there is nothing to apply (the fix is not a keepalive setting)
        parts.append(emit.comments([*header, "nothing to apply: the recommended setting turns kernel keepalive on "
                                    "on no hop (the fix is another setting, such as an idle timeout or a ping "
                                    "interval)"]))
    if skipped:
        parts[-1] += "".join(f"# {s}\n" for s in skipped)
    print("---\n".join(parts), end="")
    return 0

"""Ready-to-apply keepalive artefacts: an EnvoyFilter shaped like the seed's (LISTENER patch with
``socket_options``), a DestinationRule ``tcpKeepalive`` block and sysctl lines for a pod's netns.

Each emitter takes the keepalive as the kernel runs it (whole seconds for idle and interval, ms for
TCP_USER_TIMEOUT) and writes every value explicitly, so that the result never depends on the
netns sysctls of wherever it lands. Every output reads back through ``inspect`` to the same
effective setting (tested in tests/test_integrations.py).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from sim.facts.sockopts import SOCKET_OPTIONS, TCP_OPTIONS


@dataclass(frozen=True)
class EmitKeepalive:
    """The keepalive to write: TCP_KEEPIDLE and TCP_KEEPINTVL in seconds, TCP_KEEPCNT probes,
    TCP_USER_TIMEOUT in ms (0 = not set)."""

    idle: int
    interval: int
    count: int
    user_timeout_ms: int = 0


def k8s_name(text: str, suffix: str) -> str:
    """A DNS-1123 object name (lowercase alphanumerics and '-', at most 63 characters)."""
    base = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "sim"
    return f"{base[: 62 - len(suffix)].rstrip('-')}-{suffix}"


def comments(header: list[str], width: int = 100) -> str:
    """YAML/sysctl comment lines, long ones wrapped (indented continuation lines keep their indent)."""
    out = []
    for h in header:
        if not h:
            out.append("#\n")
            continue
        body = h.lstrip(" ")
        indent = " " * (len(h) - len(body))
        if indent:  # a command line to copy: never wrapped
            out.append(f"# {h}\n")
            continue
        for piece in textwrap.wrap(body, width=width, break_long_words=False, break_on_hyphens=False):
            out.append(f"# {piece}\n")
    return "".join(out)


def envoyfilter(ka: EmitKeepalive, *, name: str, namespace: str, listener: str, port: int,
                header: list[str], context: str = "GATEWAY") -> str:
    """An EnvoyFilter like the seed's: one LISTENER patch (MERGE) setting SO_KEEPALIVE, TCP_KEEPIDLE,
    TCP_KEEPINTVL, TCP_KEEPCNT (and TCP_USER_TIMEOUT when set) at STATE_PREBIND, so that the
    accepted sockets inherit them from the listening socket."""
    opts = [(1, 9, 1, "enable keepalive"), (6, 4, ka.idle, "seconds idle before the first probe"),
            (6, 5, ka.interval, "seconds between probes"), (6, 6, ka.count, "unanswered probes before the kill")]
    if ka.user_timeout_ms:
        opts.append((6, 18, ka.user_timeout_ms, "ms of unacknowledged data (or probes) before the kill"))
    body = "".join(
        f"        - int_value: {value}\n"
        f"          level: {level} # {'SOL_SOCKET' if level == 1 else 'SOL_TCP'}\n"
        f"          name: {opt} # {(SOCKET_OPTIONS if level == 1 else TCP_OPTIONS)[opt]}: {what}\n"
        f"          state: STATE_PREBIND\n"
        for level, opt, value, what in opts)
    return (comments(header)
            + "apiVersion: networking.istio.io/v1alpha3\n"
            + "kind: EnvoyFilter\n"
            + "metadata:\n"
            + f"  name: {name}\n"
            + f"  namespace: {namespace}\n"
            + "spec:\n"
            + "  configPatches:\n"
            + "  - applyTo: LISTENER\n"
            + "    match:\n"
            + f"      context: {context}\n"
            + "      listener:\n"
            + f"        name: {listener}\n"
            + f"        portNumber: {port}\n"
            + "    patch:\n"
            + "      operation: MERGE\n"
            + "      value:\n"
            + "        socket_options:\n"
            + body)


def destinationrule(ka: EmitKeepalive, *, name: str, namespace: str, host: str, header: list[str]) -> str:
    """A DestinationRule whose ``connectionPool.tcp.tcpKeepalive`` sets SO_KEEPALIVE with the three
    values on Envoy's upstream connections to ``host`` (durations as Istio writes them)."""
    return (comments(header)
            + "apiVersion: networking.istio.io/v1beta1\n"
            + "kind: DestinationRule\n"
            + "metadata:\n"
            + f"  name: {name}\n"
            + f"  namespace: {namespace}\n"
            + "spec:\n"
            + f"  host: {host}\n"
            + "  trafficPolicy:\n"
            + "    connectionPool:\n"
            + "      tcp:\n"
            + "        tcpKeepalive:\n"
            + f"          time: {ka.idle}s # TCP_KEEPIDLE\n"
            + f"          interval: {ka.interval}s # TCP_KEEPINTVL\n"
            + f"          probes: {ka.count} # TCP_KEEPCNT\n")


def sysctl(ka: EmitKeepalive, *, header: list[str]) -> str:
    """sysctl.conf lines for the pod's own network namespace, plus (as comments) the same values as a
    pod ``securityContext.sysctls`` block."""
    pairs = [("net.ipv4.tcp_keepalive_time", ka.idle), ("net.ipv4.tcp_keepalive_intvl", ka.interval),
             ("net.ipv4.tcp_keepalive_probes", ka.count)]
    pod = ["In a pod spec (namespaced sysctls: recent Kubernetes (1.28/1.29+) lists them as safe; older kubelets",
           "need --allowed-unsafe-sysctls):",
           "  securityContext:", "    sysctls:"]
    pod += [f'    - {{name: {k}, value: "{v}"}}' for k, v in pairs]
    lines = "".join(f"{k} = {v}\n" for k, v in pairs)
    return comments(header) + lines + comments(["", *pod])

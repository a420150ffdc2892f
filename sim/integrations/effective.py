"""The effective keepalive of a hop or a netns: what the kernel will run.

Effective values follow the kernel (kernel-keepalive.md R1, R2): a per-socket TCP_KEEPIDLE /
TCP_KEEPINTVL / TCP_KEEPCNT wins, else the socket's *own netns* sysctl, which in a fresh netns
(every pod) is the compile-time default 7200/75/9. Nothing is sent without SO_KEEPALIVE (R5).
Socket options apply in order, so a repeated option's last value wins. A cluster's
``tcp_keepalive`` sets SO_KEEPALIVE and its values first; its ``upstream_bind_config``
socket options are applied after them (Envoy's order), so they win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from sim.facts.kernel import DEFAULT_SYSCTL
from sim.integrations.model import KEEP_OPTS, SO_KEEPALIVE, TCP_USER_TIMEOUT, HopDecl, Parsed

SYSCTL_OF = {"idle": "net.ipv4.tcp_keepalive_time", "interval": "net.ipv4.tcp_keepalive_intvl",
             "count": "net.ipv4.tcp_keepalive_probes"}
OPTION_OF = {"idle": "TCP_KEEPIDLE", "interval": "TCP_KEEPINTVL", "count": "TCP_KEEPCNT"}
ISTIO_OF = {"idle": "time", "interval": "interval", "count": "probes"}
ENVOY_OF = {"idle": "keepalive_time", "interval": "keepalive_interval", "count": "keepalive_probes"}


@dataclass
class Effective:
    """A socket's keepalive as the kernel will run it: I, V (seconds) and C, each with its source."""

    enabled: bool
    idle: int
    interval: int
    count: int
    user_timeout_ms: int = 0
    sources: dict[str, str] = field(default_factory=dict)
    fallbacks: list[str] = field(default_factory=list)  # which of idle/interval/count come from sysctls

    @property
    def triple(self) -> str:
        """``300/20/4``: idle/interval/count."""
        return f"{self.idle}/{self.interval}/{self.count}"

    def dead_peer_s(self) -> float:
        """Nominal time from the last packet to the kill of a dead peer (R17): I + C·V, or with
        TCP_USER_TIMEOUT U the first check after U with a probe out: I + max(1, ⌈(U − I)/V⌉)·V."""
        if self.user_timeout_ms > 0:
            u = self.user_timeout_ms / 1000.0
            return self.idle + max(1, math.ceil((u - self.idle) / self.interval)) * self.interval
        return self.idle + self.count * self.interval


def resolve(declared: dict[str, int | None], enabled: bool, sysctl: dict[str, int], netns: str,
            given_by: dict[str, str], user_timeout_ms: int = 0) -> Effective:
    """Fill what a socket does not set from its netns sysctls (R1, R2), recording the source."""
    vals: dict[str, int] = {}
    sources: dict[str, str] = {}
    fallbacks = []
    for key in ("idle", "interval", "count"):
        v = declared.get(key)
        if v is not None:
            vals[key], sources[key] = v, given_by[key]
        else:
            name = SYSCTL_OF[key]
            vals[key] = sysctl.get(name, DEFAULT_SYSCTL[name])
            default = "" if name in sysctl and sysctl[name] != DEFAULT_SYSCTL[name] else " (kernel default)"
            sources[key] = f"{name} = {vals[key]}{default} of {netns}"
            fallbacks.append(key)
    return Effective(enabled, vals["idle"], vals["interval"], vals["count"], user_timeout_ms, sources, fallbacks)


def hop_effective(hop: HopDecl, sysctl: dict[str, int] | None = None) -> Effective:
    """The effective keepalive of a listener or cluster hop (see the module doc for the order)."""
    sysctl = sysctl or {}
    netns = "the Envoy pod's netns"
    enabled = False
    declared: dict[str, int | None] = {"idle": None, "interval": None, "count": None}
    given: dict[str, str] = {}
    user_timeout = 0
    user_timeout_src = ""
    if hop.tcp_keepalive is not None:
        enabled = True
        names = ISTIO_OF if hop.origin in ("destinationrule", "meshconfig") else ENVOY_OF
        what = "tcpKeepalive" if hop.origin in ("destinationrule", "meshconfig") else "tcp_keepalive"
        for key, v in hop.tcp_keepalive.items():
            if v is not None:
                declared[key] = v
                given[key] = hop.ka_sources.get(key) or f"{what}.{names[key]}"
    where = "upstream_bind_config socket option" if hop.side == "cluster" else "socket option"
    for so in hop.socket_options or []:
        at = f" (line {so.line})" if so.line else ""
        if (so.level, so.name) == SO_KEEPALIVE:
            enabled = bool(so.value)
        elif (so.level, so.name) == TCP_USER_TIMEOUT:
            user_timeout, user_timeout_src = so.value or 0, f"{where} TCP_USER_TIMEOUT{at}"
        elif (so.level, so.name) in KEEP_OPTS:
            key = KEEP_OPTS[(so.level, so.name)]
            declared[key], given[key] = so.value, f"{where} {OPTION_OF[key]}{at}"
    eff = resolve(declared, enabled, sysctl, netns, given, user_timeout)
    if user_timeout_src:
        eff.sources["user_timeout"] = user_timeout_src
    return eff


def netns_effective(parsed: Parsed) -> Effective:
    """What a socket with only SO_KEEPALIVE=1 gets in the netns these sysctl lines describe."""
    sysctl = {k: v for k, (v, _) in parsed.sysctl.items()}
    return resolve({}, True, sysctl, "this netns", {})

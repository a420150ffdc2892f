"""What ``inspect``'s parsers record: socket options, hops, ``ss``/``netstat`` sockets, and the
small helpers every parser shares (line look-up, protobuf-JSON field spelling, integers).

The parsers only record what is declared, with where it was declared; what is *effective* is
decided in :mod:`sim.integrations.effective`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sim.config.yamlio import dotted
from sim.errors import ConfigError
from sim.facts.sockopts import option_name

ALLOWED_INPUTS = ("an Istio EnvoyFilter, DestinationRule, IstioOperator or mesh ConfigMap (YAML), an Envoy "
                  "config_dump (JSON, `curl localhost:15000/config_dump`, `istioctl proxy-config ... -o json`), "
                  "`ss -nte`/`ss -nteo` or `netstat -tnop` output, or `sysctl -a` lines")

Lines = dict[tuple, int]
#: (level, name) of the options the keepalive model reads
KEEP_OPTS = {(6, 4): "idle", (6, 5): "interval", (6, 6): "count"}
SO_KEEPALIVE = (1, 9)
TCP_USER_TIMEOUT = (6, 18)


@dataclass
class SockOpt:
    """One Envoy ``SocketOption``: numbers as the kernel takes them (seconds for TCP_KEEPIDLE and
    TCP_KEEPINTVL, ms for TCP_USER_TIMEOUT). ``value`` is None for a ``buf_value`` option."""

    level: int
    name: int
    value: int | None
    state: str | None = None
    line: int | None = None

    @property
    def label(self) -> str:
        """``SOL_TCP/TCP_KEEPIDLE`` style name, from the uapi tables."""
        return option_name(self.level, self.name)


@dataclass
class HopDecl:
    """Keepalive as declared for one hop: a listener (Envoy's accepted, downstream sockets) or a
    cluster (Envoy's upstream sockets)."""

    side: str  # "listener" | "cluster"
    name: str
    origin: str  # "envoyfilter" | "config_dump" | "destinationrule" | "meshconfig" | "excerpt"
    source: str  # human-readable: which document / patch / path
    line: int | None = None
    port: int | None = None
    context: str | None = None  # EnvoyFilter match.context (GATEWAY, SIDECAR_INBOUND, ...)
    #: listener: its socket_options; cluster: upstream_bind_config.socket_options (applied after
    #: tcp_keepalive, so they win). None: the hop declares none at all.
    socket_options: list[SockOpt] | None = None
    #: TcpKeepalive / tcpKeepalive, canonical keys idle/interval/count in seconds/probes (None: not
    #: given, falls back to the netns sysctl). The whole dict is None when there is no such block.
    tcp_keepalive: dict[str, int | None] | None = None
    #: where each tcp_keepalive value came from (idle/interval/count -> "meshConfig.tcpKeepalive.time, line 7")
    ka_sources: dict[str, str] = field(default_factory=dict)
    bind_to_port: bool | None = None
    listener_state: str | None = None  # config_dump: active | warming | draining
    #: tcp_keepalive values that are 0 s (Istio truncates sub-second durations): canon key -> what
    zeros: dict[str, str] = field(default_factory=dict)
    #: DestinationRule hop: its trafficPolicy sets a connectionPool of its own
    pool_set: bool = False
    #: set when the declared values make Envoy fail every connection of this hop (why, one line)
    broken: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SsConn:
    """One socket line of ``ss -nte[o]`` (or ``netstat -tno``); times in seconds."""

    line: int
    state: str
    local: str
    peer: str
    timer: str | None = None  # on | keepalive | timewait | persist | unknown | off
    timer_text: str | None = None  # TIME exactly as printed ("" = overdue)
    left_s: float | None = None  # requested expiry minus now, truncated as ss prints it
    left_resolution_s: float | None = None  # the true value lies in [left_s, left_s + resolution)
    count: int | None = None  # probes_out for keepalive/persist, retransmits for on
    extras: dict[str, str] = field(default_factory=dict)


@dataclass
class Parsed:
    """Everything ``inspect`` read from one file."""

    kind: str  # envoyfilter | destinationrule | meshconfig | manifests | config_dump | ss | netstat | sysctl
    file: str
    title: str
    hops: list[HopDecl] = field(default_factory=list)
    conns: list[SsConn] = field(default_factory=list)
    sysctl: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (value, line)
    sysctl_lines: int = 0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers
def line_of(lines: Lines | None, path: tuple) -> int | None:
    """Line of the deepest known prefix of ``path`` (None for JSON, which has no line map)."""
    if not lines:
        return None
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def get(node: Any, *keys: str) -> Any:
    """``node[k1][k2]...`` or None when any step is missing or not a mapping."""
    for k in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(k)
    return node


def camel(snake: str) -> str:
    """Protobuf JSON name of a field: ``socket_options`` -> ``socketOptions``."""
    head, *rest = snake.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def pick(obj: Any, snake: str, file: str = "", lines: Lines | None = None,
         base: tuple = ()) -> tuple[str | None, Any]:
    """(key as written, value) of an Envoy proto field given in either JSON spelling, as protobuf
    JSON parsers accept both (``socket_options`` / ``socketOptions``); (None, None) when absent.
    Both spellings at once is an error, as it is for protobuf's JSON parser."""
    if not isinstance(obj, dict):
        return None, None
    names = [k for k in (snake, camel(snake)) if k in obj]
    if len(names) == 2 and names[0] != names[1]:
        raise ConfigError(f"{names[0]} and {names[1]} are the same field, given twice", file=file,
                          line=line_of(lines, base + (names[1],)), key=dotted(base + (names[1],)),
                          allowed="one spelling of each field")
    if not names:
        return None, None
    return names[0], obj[names[0]]


def pick_path(obj: Any, *snakes: str) -> tuple[tuple, Any]:
    """Follow several fields (each in either spelling): (the path as written, value or None)."""
    path: tuple = ()
    for s in snakes:
        key, obj = pick(obj, s)
        if key is None:
            return path, None
        path += (key,)
    return path, obj


def to_int(value: Any, file: str, key: str, line: int | None, what: str = "an integer") -> int:
    """An integer from JSON/YAML; protobuf JSON spells 64-bit integers as strings ("300")."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]{1,19}\s*", value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{value!r} is not an integer", file=file, line=line, key=key, allowed=what)
    return value

"""Input kind detection and parsers for ``inspect``.

Reads what users actually have, not our YAML: an Istio EnvoyFilter (LISTENER ``socket_options``,
CLUSTER ``upstream_connection_options``), an Istio DestinationRule
(``connectionPool.tcp.tcpKeepalive``), an Envoy ``config_dump`` (listeners' ``socket_options``,
clusters' ``upstream_connection_options.tcp_keepalive``; also ``istioctl proxy-config -o json``
lists and pasted excerpts), ``ss -nte`` / ``ss -nteo`` output and ``sysctl -a`` style lines.

The parsers only record what is declared, with where it was declared; what is *effective* (and
what a missing value falls back to) is decided in :mod:`sim.integrations.inspect`. Bad input is a
:class:`~sim.errors.ConfigError` (exit 2) saying what was expected.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim.config.durations import whole_seconds
from sim.config.schema import SYSCTL_RANGES
from sim.config.sockopts import option_name
from sim.config.yamlio import read_yaml_docs
from sim.errors import ConfigError
from sim.model.kernel import MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL, SockOptError, check_keepalive_option

ALLOWED_INPUTS = ("an Istio EnvoyFilter or DestinationRule (YAML), an Envoy config_dump (JSON, "
                  "`curl localhost:15000/config_dump`), `ss -nte` or `ss -nteo` output, or `sysctl -a` lines")

Lines = dict[tuple, int]


# ----------------------------------------------------------------------------- parsed facts
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
    origin: str  # "envoyfilter" | "config_dump" | "destinationrule"
    source: str  # human-readable: which document / patch / path
    line: int | None = None
    port: int | None = None
    context: str | None = None  # EnvoyFilter match.context (GATEWAY, SIDECAR_INBOUND, ...)
    socket_options: list[SockOpt] | None = None  # None: the hop declares no socket_options at all
    #: TcpKeepalive / tcpKeepalive, canonical keys idle/interval/count in seconds/probes (None: not
    #: given, falls back to the netns sysctl). The whole dict is None when there is no such block.
    tcp_keepalive: dict[str, int | None] | None = None
    bind_to_port: bool | None = None
    listener_state: str | None = None  # config_dump: active | warming | draining
    notes: list[str] = field(default_factory=list)


@dataclass
class SsConn:
    """One socket line of ``ss -nte[o]``; times in seconds."""

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

    kind: str  # envoyfilter | destinationrule | manifests | config_dump | ss | sysctl
    file: str
    title: str
    hops: list[HopDecl] = field(default_factory=list)
    conns: list[SsConn] = field(default_factory=list)
    sysctl: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (value, line)
    sysctl_lines: int = 0
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- entry points
def read_text(path: str) -> tuple[str, str]:
    """(text, display name) of FILE, ``-`` meaning stdin. ConfigError when unreadable."""
    if path == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path, allowed=ALLOWED_INPUTS) from None
    try:
        return data.decode("utf-8"), path
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=path, line=line,
                          allowed=ALLOWED_INPUTS) from None


def parse_file(path: str) -> Parsed:
    """Read FILE (or stdin for ``-``), detect its kind and parse it."""
    text, name = read_text(path)
    return parse_text(text, name)


def parse_text(text: str, file: str) -> Parsed:
    """Detect the kind of ``text`` and parse it. Order matters: JSON first, then the two line
    formats (``ss`` and sysctl lines are also valid YAML scalars), YAML last."""
    if not text.strip():
        raise ConfigError("empty input", file=file, allowed=ALLOWED_INPUTS)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "[", '"'):
        data, repaired = _load_json(text)
        if data is not None:
            parsed = _from_envoy_objects(data, file, "config_dump", None)
            if repaired:
                parsed.notes.append(f"read as a pasted excerpt ({repaired})")
            return parsed
    if _looks_like_ss(text):
        return parse_ss(text, file)
    if _looks_like_sysctl(text):
        return parse_sysctl(text, file)
    return _parse_yaml(text, file)


# ----------------------------------------------------------------------------- numbers
def _int(value: Any, file: str, key: str, line: int | None, what: str = "an integer") -> int:
    """An integer from JSON/YAML; config_dump spells int64 fields as strings ("300")."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{value!r} is not an integer", file=file, line=line, key=key, allowed=what)
    return value


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


def _line(lines: Lines | None, path: tuple) -> int | None:
    """Line of the deepest known prefix of ``path`` (None for JSON, which has no line map)."""
    if not lines:
        return None
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _get(node: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(node, dict):
            return None
        node = node.get(k)
    return node


# ----------------------------------------------------------------------------- socket options
_STATES = ("STATE_PREBIND", "STATE_BOUND", "STATE_LISTENING")


def parse_socket_options(raw: Any, file: str, lines: Lines | None, base: tuple) -> list[SockOpt]:
    """Envoy ``socket_options`` (EnvoyFilter or config_dump spelling) → SockOpts. Any option is
    accepted and named; TCP_KEEP*/TCP_USER_TIMEOUT values the kernel would reject are errors."""
    if not isinstance(raw, list):
        raise ConfigError("socket_options must be a list of {level, name, int_value}", file=file,
                          line=_line(lines, base), key=_dotted(base))
    out = []
    for i, opt in enumerate(raw):
        where = base + (i,)
        line = _line(lines, where)
        if not isinstance(opt, dict):
            raise ConfigError("each socket option is a mapping {level, name, int_value, state}", file=file,
                              line=line, key=_dotted(where))
        for k in ("level", "name"):
            if k not in opt:
                raise ConfigError(f"missing {k}", file=file, line=line, key=_dotted(where),
                                  allowed="level, name, int_value or buf_value, state")
        level = _int(opt["level"], file, _dotted(where + ("level",)), _line(lines, where + ("level",)),
                     "an integer protocol level: 1 = SOL_SOCKET, 6 = SOL_TCP")
        name = _int(opt["name"], file, _dotted(where + ("name",)), _line(lines, where + ("name",)),
                    "an integer option number from the uapi headers")
        value = None
        if "int_value" in opt:
            value = _int(opt["int_value"], file, _dotted(where + ("int_value",)),
                         _line(lines, where + ("int_value",)),
                         "an integer: whole seconds for TCP_KEEPIDLE/INTVL, ms for TCP_USER_TIMEOUT")
        elif "buf_value" not in opt:
            value = 0  # proto3 omits a zero int_value in config_dump output
        state = opt.get("state")
        if state is not None and state not in _STATES:
            raise ConfigError(f"{state!r} is not a socket state", file=file, line=_line(lines, where + ("state",)),
                              key=_dotted(where + ("state",)), allowed=", ".join(_STATES))
        so = SockOpt(level, name, value, state, line)
        known = {(6, 4): "TCP_KEEPIDLE", (6, 5): "TCP_KEEPINTVL", (6, 6): "TCP_KEEPCNT",
                 (6, 18): "TCP_USER_TIMEOUT"}.get((level, name))
        if known and value is not None:
            try:
                check_keepalive_option(known, value)
            except SockOptError as exc:
                raise ConfigError(f"{known} {value} is rejected by the kernel with EINVAL", file=file,
                                  line=_line(lines, where + ("int_value",)), key=_dotted(where + ("int_value",)),
                                  allowed=exc.allowed) from None
        out.append(so)
    return out


# Envoy TcpKeepalive (UInt32 seconds) and Istio tcpKeepalive (durations) → canonical names.
_ENVOY_KA = {"keepalive_time": "idle", "keepalive_interval": "interval", "keepalive_probes": "count"}
_ISTIO_KA = {"time": "idle", "interval": "interval", "probes": "count"}


def parse_tcp_keepalive(raw: Any, file: str, lines: Lines | None, base: tuple, *, istio: bool) -> dict[str, int | None]:
    """Envoy ``TcpKeepalive`` or Istio ``tcpKeepalive`` → {idle, interval, count}; None = not given
    (the kernel then uses the netns sysctl). Range errors are what setsockopt would reject (R3)."""
    names = _ISTIO_KA if istio else _ENVOY_KA
    if raw is None:
        raw = {}  # `tcpKeepalive: {}` / `tcp_keepalive: {}`: SO_KEEPALIVE on, all from sysctls
    if not isinstance(raw, dict):
        raise ConfigError(f"{raw!r} should be a mapping", file=file, line=_line(lines, base), key=_dotted(base),
                          allowed=", ".join(names))
    extra = [k for k in raw if k not in names]
    if extra:
        k = extra[0]
        raise ConfigError(f"unknown key {k!r}", file=file, line=_line(lines, base + (k,)), key=_dotted(base + (k,)),
                          allowed=", ".join(names))
    out: dict[str, int | None] = {"idle": None, "interval": None, "count": None}
    for key, canon in names.items():
        if key not in raw or raw[key] is None:
            continue
        where = base + (key,)
        line = _line(lines, where)
        value = raw[key]
        if isinstance(value, dict) and "value" in value:  # a protobuf wrapper spelt out
            value = value["value"]
        try:
            if canon == "count":
                n = _int(value, file, _dotted(where), line, "an integer 1..127")
                check_keepalive_option("TCP_KEEPCNT", n)
            else:
                option = "TCP_KEEPIDLE" if canon == "idle" else "TCP_KEEPINTVL"
                hi = MAX_TCP_KEEPIDLE if canon == "idle" else MAX_TCP_KEEPINTVL
                if istio:
                    n = whole_seconds(value, option, 1, hi)  # "300s"; the kernel takes whole seconds
                else:
                    n = _int(value, file, _dotted(where), line, f"whole seconds 1..{hi}")
                    check_keepalive_option(option, n)
        except SockOptError as exc:
            raise ConfigError(f"{exc.option} {value} is rejected by the kernel with EINVAL", file=file, line=line,
                              key=_dotted(where), allowed=exc.allowed) from None
        except ValueError as exc:
            problem, _, allowed = str(exc).partition(" (allowed: ")
            raise ConfigError(problem, file=file, line=line, key=_dotted(where), allowed=allowed.rstrip(")")) from None
        out[canon] = n
    return out


# ----------------------------------------------------------------------------- JSON (config_dump)
def _load_json(text: str) -> tuple[Any, str]:
    """(data, repair note). Strict JSON first; then the repairs a pasted excerpt such as the seed's
    needs: ``...`` lines dropped, trailing commas removed, a bare ``"key": [...]`` wrapped in braces
    and unclosed brackets closed. (None, "") when it is not JSON at all."""
    try:
        return json.loads(text), ""
    except json.JSONDecodeError:
        pass
    done = []
    body = "\n".join(ln for ln in text.splitlines() if ln.strip().rstrip(",") not in ("...", "…"))
    if body != text:
        done.append("'...' lines dropped")
    if body.lstrip().startswith('"'):
        body = "{" + body
        done.append("wrapped in braces")
    cleaned = re.sub(r",(\s*[}\]])", r"\1", body)
    if cleaned != body:
        done.append("trailing commas removed")
    closers = _unclosed(cleaned)
    if closers:
        cleaned += "\n" + closers
        done.append(f"closed with {closers!r}")
    try:
        return json.loads(cleaned), ", ".join(done)
    except json.JSONDecodeError:
        return None, ""


def _unclosed(text: str) -> str:
    """The closing brackets that ``text`` is missing, outside JSON strings."""
    stack: list[str] = []
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack and stack[-1] == ch:
            stack.pop()
    return "".join(reversed(stack))


_LISTENER_T = "envoy.config.listener.v3.Listener"
_CLUSTER_T = "envoy.config.cluster.v3.Cluster"
_STATE_KEYS = {"active_state": "active", "warming_state": "warming", "draining_state": "draining"}


def _is_listener(obj: dict) -> bool:
    t = str(obj.get("@type", ""))
    if t.endswith(_LISTENER_T):
        return True
    return "address" in obj and any(k in obj for k in ("filter_chains", "socket_options", "listener_filters",
                                                       "default_filter_chain"))


def _is_cluster(obj: dict) -> bool:
    t = str(obj.get("@type", ""))
    if t.endswith(_CLUSTER_T):
        return True
    return "name" in obj and any(k in obj for k in ("upstream_connection_options", "connect_timeout",
                                                    "eds_cluster_config", "load_assignment"))


def _from_envoy_objects(data: Any, file: str, kind: str, lines: Lines | None, base: tuple = ()) -> Parsed:
    """Find every Envoy Listener and Cluster in a config_dump (any of its sections, or a bare list
    as printed by ``istioctl proxy-config listener -o json``)."""
    parsed = Parsed(kind=kind, file=file, title="Envoy config_dump")
    seen: set = set()
    _walk(data, base, None, parsed, seen, file, lines)
    if not parsed.hops:
        raise ConfigError("no Envoy listener or cluster found", file=file, allowed=ALLOWED_INPUTS)
    n_l = sum(h.side == "listener" for h in parsed.hops)
    n_c = len(parsed.hops) - n_l
    parsed.title = f"Envoy config_dump: {n_l} listener(s), {n_c} cluster(s)"
    return parsed


def _walk(node: Any, path: tuple, state: str | None, parsed: Parsed, seen: set, file: str,
          lines: Lines | None) -> None:
    if isinstance(node, list):
        for i, v in enumerate(node):
            _walk(v, path + (i,), state, parsed, seen, file, lines)
        return
    if not isinstance(node, dict):
        return
    if _is_listener(node):
        hop = _listener_from_dump(node, path, state, file, lines)
        key = ("listener", hop.name, hop.port, state)
        if key not in seen:  # the bootstrap and ListenersConfigDump both list static listeners
            seen.add(key)
            parsed.hops.append(hop)
        return
    if _is_cluster(node):
        hop = _cluster_from_dump(node, path, file, lines)
        key = ("cluster", hop.name)
        if key not in seen:
            seen.add(key)
            parsed.hops.append(hop)
        return
    for k, v in node.items():
        _walk(v, path + (k,), _STATE_KEYS.get(k, state), parsed, seen, file, lines)


def _listener_from_dump(obj: dict, path: tuple, state: str | None, file: str, lines: Lines | None) -> HopDecl:
    sa = _get(obj, "address", "socket_address") or {}
    port = sa.get("port_value")
    port = _int(port, file, _dotted(path + ("address", "socket_address", "port_value")), None) if port is not None \
        else None
    name = str(obj.get("name") or f"{sa.get('address', '?')}_{port}")
    bind = obj.get("bind_to_port")
    if isinstance(bind, dict):
        bind = bind.get("value")
    hop = HopDecl(side="listener", name=name, origin="config_dump", port=port, listener_state=state,
                  source=f"config_dump {_dotted(path)}", line=_line(lines, path),
                  bind_to_port=bind if isinstance(bind, bool) else None)
    if "socket_options" in obj:
        hop.socket_options = parse_socket_options(obj["socket_options"], file, lines, path + ("socket_options",))
    if "tcp_keepalive" in obj:
        # Envoy PR #41934 (2025) added a listener-level tcp_keepalive; its units are not settled in
        # the sources we have, so it is reported but not decoded.
        hop.notes.append("has a listener-level tcp_keepalive field (Envoy PR #41934): not decoded here; "
                         "only socket_options are used")
    return hop


def _cluster_from_dump(obj: dict, path: tuple, file: str, lines: Lines | None) -> HopDecl:
    hop = HopDecl(side="cluster", name=str(obj.get("name", "?")), origin="config_dump",
                  source=f"config_dump {_dotted(path)}", line=_line(lines, path))
    uco = obj.get("upstream_connection_options")
    if isinstance(uco, dict) and "tcp_keepalive" in uco:
        hop.tcp_keepalive = parse_tcp_keepalive(uco["tcp_keepalive"], file, lines,
                                                path + ("upstream_connection_options", "tcp_keepalive"), istio=False)
    return hop


# ----------------------------------------------------------------------------- YAML (Istio)
def _yaml_docs(text: str, file: str) -> list[tuple[Any, Lines]]:
    """Every document of a multi-document YAML stream, each with its key → line map."""
    return read_yaml_docs(text, file, what="not a recognised input: neither JSON, `ss` output, sysctl lines nor "
                                           "valid YAML")


def _parse_yaml(text: str, file: str) -> Parsed:
    docs = _yaml_docs(text, file)
    if not docs:
        raise ConfigError("no YAML document", file=file, allowed=ALLOWED_INPUTS)
    hops: list[HopDecl] = []
    notes: list[str] = []
    kinds: list[str] = []
    titles: list[str] = []
    rejected: list[ConfigError] = []
    for n, (doc, lines) in enumerate(docs):
        items = [(doc, ())]
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            items = [(it, ("items", i)) for i, it in enumerate(doc["items"])]  # kubectl get -o yaml
        for obj, base in items:
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind == "EnvoyFilter":
                h, t, nt = _envoyfilter(obj, lines, base, file)
            elif kind == "DestinationRule":
                h, t, nt = _destinationrule(obj, lines, base, file)
            elif isinstance(obj, dict) and kind is None and {"envoy", "lb", "sweep"} & set(obj):
                rejected.append(ConfigError("this is a sim scenario config, not a deployed artefact", file=file,
                                            line=1, allowed="`python -m sim recommend CONFIG --emit ...` for a "
                                            "scenario; inspect reads " + ALLOWED_INPUTS))
                continue
            elif isinstance(obj, (dict, list)) and kind is None:
                try:  # config_dump / istioctl proxy-config output in YAML form
                    p = _from_envoy_objects(obj, file, "config_dump", lines, base)
                except ConfigError as exc:
                    rejected.append(exc)
                    continue
                h, t, nt, kind = p.hops, p.title, p.notes, "config_dump"
            else:
                what = f"{kind!r}" if kind else f"a YAML {type(obj).__name__}"
                where = base + ("kind",) if kind else base
                rejected.append(ConfigError(f"{what} is not an input inspect reads", file=file,
                                            line=_line(lines, where) or 1, key="kind" if kind else "",
                                            allowed=ALLOWED_INPUTS))
                if kind:
                    notes.append(f"document {n + 1}: kind {kind} ignored")
                continue
            hops += h
            notes += nt
            kinds.append(str(kind).lower())
            titles.append(t)
    if not kinds:
        raise rejected[0] if rejected else ConfigError("not a recognised input", file=file, allowed=ALLOWED_INPUTS)
    kind = kinds[0] if len(set(kinds)) == 1 else "manifests"
    return Parsed(kind=kind, file=file, title="; ".join(titles), hops=hops, notes=notes)


def _envoyfilter(doc: dict, lines: Lines, base: tuple, file: str) -> tuple[list[HopDecl], str, list[str]]:
    name = _get(doc, "metadata", "name") or "(unnamed)"
    patches = _get(doc, "spec", "configPatches")
    notes: list[str] = []
    if patches is None:
        patches = []
    if not isinstance(patches, list):
        where = base + ("spec", "configPatches")
        raise ConfigError("configPatches must be a list", file=file, line=_line(lines, where), key=_dotted(where),
                          allowed="a list of {applyTo, match, patch}")
    hops: list[HopDecl] = []
    ignored: dict[str, int] = {}
    for i, p in enumerate(patches):
        where = base + ("spec", "configPatches", i)
        if not isinstance(p, dict):
            raise ConfigError("each config patch is a mapping", file=file, line=_line(lines, where),
                              key=_dotted(where), allowed="{applyTo, match, patch}")
        apply = p.get("applyTo")
        match = p.get("match") if isinstance(p.get("match"), dict) else {}
        context = match.get("context", "ANY")
        op = _get(p, "patch", "operation")
        value = _get(p, "patch", "value")
        value = value if isinstance(value, dict) else {}
        vpath = where + ("patch", "value")
        src = f"EnvoyFilter {name} configPatches[{i}]"
        if apply == "LISTENER":
            lm = match.get("listener") if isinstance(match.get("listener"), dict) else {}
            port = lm.get("portNumber")
            port = _int(port, file, _dotted(where + ("match", "listener", "portNumber")),
                        _line(lines, where + ("match", "listener", "portNumber"))) if port is not None else None
            lname = lm.get("name") or (f"port {port}" if port else f"every {context} listener")
            hop = HopDecl(side="listener", name=str(lname), origin="envoyfilter", source=src,
                          line=_line(lines, where), port=port, context=str(context))
            if op == "REMOVE":
                hop.notes.append("operation REMOVE deletes the listener; nothing is set")
            if "socket_options" in value:
                hop.socket_options = parse_socket_options(value["socket_options"], file, lines,
                                                          vpath + ("socket_options",))
            hops.append(hop)
        elif apply == "CLUSTER":
            cm = match.get("cluster") if isinstance(match.get("cluster"), dict) else {}
            cname = cm.get("name") or cm.get("service") or f"every {context} cluster"
            if cm.get("portNumber"):
                cname = f"{cname} port {cm['portNumber']}"
            hop = HopDecl(side="cluster", name=str(cname), origin="envoyfilter", source=src,
                          line=_line(lines, where), context=str(context))
            uco = value.get("upstream_connection_options")
            if isinstance(uco, dict) and "tcp_keepalive" in uco:
                hop.tcp_keepalive = parse_tcp_keepalive(uco["tcp_keepalive"], file, lines,
                                                        vpath + ("upstream_connection_options", "tcp_keepalive"),
                                                        istio=False)
            hops.append(hop)
        else:
            ignored[str(apply)] = ignored.get(str(apply), 0) + 1
    if ignored:
        notes.append("patches not about sockets ignored: " + ", ".join(f"{k} x{v}" for k, v in ignored.items()))
    if not hops:
        notes.append(f"EnvoyFilter {name} has no LISTENER or CLUSTER patch: it sets no socket option")
    return hops, f"EnvoyFilter {name}", notes


def _destinationrule(doc: dict, lines: Lines, base: tuple, file: str) -> tuple[list[HopDecl], str, list[str]]:
    name = _get(doc, "metadata", "name") or "(unnamed)"
    host = _get(doc, "spec", "host") or "?"
    spec = base + ("spec",)
    hops: list[HopDecl] = []

    def policy(tp: Any, where: tuple, label: str, always: bool) -> None:
        """A hop for this trafficPolicy's connectionPool (top level always, others when they set one)."""
        tp = tp if isinstance(tp, dict) else {}
        pool = tp.get("connectionPool")
        if pool is not None or always:
            tcp = _get(pool, "tcp") if isinstance(pool, dict) else None
            hop = HopDecl(side="cluster", name=label, origin="destinationrule",
                          source=f"DestinationRule {name} {_dotted(where[len(base):]) or 'spec'}",
                          line=_line(lines, where + ("connectionPool",)) or _line(lines, where))
            if isinstance(tcp, dict) and "tcpKeepalive" in tcp:
                hop.tcp_keepalive = parse_tcp_keepalive(tcp["tcpKeepalive"], file, lines,
                                                        where + ("connectionPool", "tcp", "tcpKeepalive"), istio=True)
            hops.append(hop)
        for j, pls in enumerate(tp.get("portLevelSettings") or []):
            if isinstance(pls, dict) and "connectionPool" in pls:
                port = _get(pls, "port", "number")
                policy(pls, where + ("portLevelSettings", j), f"{label} port {port}", False)

    policy(_get(doc, "spec", "trafficPolicy"), spec + ("trafficPolicy",), str(host), True)
    for k, sub in enumerate(_get(doc, "spec", "subsets") or []):
        if isinstance(sub, dict):
            policy(sub.get("trafficPolicy"), spec + ("subsets", k, "trafficPolicy"),
                   f"{host} subset {sub.get('name', k)}", False)
    top = hops[0]
    for hop in hops[1:]:
        if hop.tcp_keepalive is None and top.tcp_keepalive is not None:
            # Istio merges a subset's or port's trafficPolicy field by field: its connectionPool replaces
            # the top-level one as a whole, tcpKeepalive included.
            hop.notes.append(f"cluster {hop.name}: its own connectionPool replaces the top-level one as a whole, so "
                             "the top-level tcpKeepalive does not apply to it")
    return hops, f"DestinationRule {name} (host {host})", []


# ----------------------------------------------------------------------------- ss
_SS_STATES = ("ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "TIME-WAIT", "UNCONN", "CLOSE-WAIT",
              "LAST-ACK", "LISTEN", "CLOSING", "UNKNOWN")
_SS_LINE = re.compile(r"^(?:(?:tcp6?|mptcp)\s+)?(?P<state>" + "|".join(map(re.escape, _SS_STATES))
                      + r")\s+\d+\s+\d+\s+\S+\s+\S+")
_SS_NOSTATE = re.compile(r"^(?:(?:tcp6?|mptcp)\s+)?\d+\s+\d+\s+\S+:\S+\s+\S+:\S+")  # `ss ... state established`
_SS_HEADER = re.compile(r"^(?:Netid\s+)?(?:State\s+)?Recv-Q\s+Send-Q\s+Local")
_TIMER = re.compile(r"timer:\((?P<kind>[a-z]+),(?P<time>[^,)]*),(?P<count>\d+)\)")
_MS_TIMER = re.compile(r"^(?:(?P<min>\d+)min)?(?:(?P<sec>\d+)(?P<sep>sec|\.))?(?:(?P<ms>\d{3})(?P<unit>ms|sec))?$")


def parse_ms_timer(text: str) -> tuple[float, float]:
    """Invert iproute2's ``print_ms_timer`` (kernel-keepalive.md §9): (seconds, resolution in s).

    ``4min48sec`` → 288 s (±1 s); ``10min`` → 600 s (seconds dropped above 9 min); ``12sec``;
    ``1.988ms`` (iproute2 < 6.11, *meaning 1.988 s*) and ``1.988sec`` (≥ 6.11) → 1.988 s; ``088ms``
    → 0.088 s; an empty TIME → 0 (the timer is overdue, waiting for its wheel bucket).
    ValueError for anything print_ms_timer cannot print."""
    text = text.strip()
    if text == "":
        return 0.0, 0.001
    m = _MS_TIMER.match(text)
    if not m or not (m["min"] or m["sec"] or m["ms"]):
        raise ValueError(f"{text!r} is not an ss timer value")
    if any(m[g] and m[g].startswith("0") for g in ("min", "sec")):
        raise ValueError(f"{text!r}: ss prints minutes and seconds without leading zeros")
    if m["sep"] == "." and m["ms"] is None:
        raise ValueError(f"{text!r}: a '.' must be followed by three millisecond digits")
    if m["sep"] == "sec" and m["ms"] is not None:
        raise ValueError(f"{text!r} is not an ss timer value")
    if m["ms"] is not None and m["sec"] is None and m["unit"] == "sec":
        raise ValueError(f"{text!r}: milliseconds alone are printed as NNNms")
    if m["min"] and m["ms"] is not None:
        raise ValueError(f"{text!r}: ss drops milliseconds when minutes are printed")
    minutes, secs, ms = int(m["min"] or 0), int(m["sec"] or 0), int(m["ms"] or 0)
    if minutes > 9:
        resolution = 60.0  # print_ms_timer drops the seconds above 9 minutes
    elif minutes or secs > 9:
        resolution = 1.0  # ... and the milliseconds with minutes or above 9 seconds
    else:
        resolution = 0.001
    return minutes * 60 + secs + ms / 1000.0, resolution


def _ss_content(text: str) -> list[tuple[int, str]]:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if s and not s.startswith(("$", "#")):
            out.append((n, raw))
    return out


def _looks_like_ss(text: str) -> bool:
    for _, raw in _ss_content(text):
        s = raw.strip()
        if _SS_HEADER.match(s) or _SS_LINE.match(s):
            return True
    return False


def parse_ss(text: str, file: str) -> Parsed:
    """``ss -nte`` / ``-nteo`` output: one SsConn per socket. Continuation lines (``ss`` in a
    terminal, ``-i``) are folded into the socket above them; prompt lines (``$ ss ...``) skipped."""
    parsed = Parsed(kind="ss", file=file, title="ss output")
    for n, raw in _ss_content(text):
        s = raw.strip()
        if _SS_HEADER.match(s):
            continue
        m = _SS_LINE.match(s)
        tokens = s.split()
        if tokens and tokens[0] in ("tcp", "tcp6", "mptcp"):
            tokens = tokens[1:]
        if m:
            state, rest = m["state"], tokens[5:]
            local, peer = tokens[3], tokens[4]
        elif _SS_NOSTATE.match(s):
            state, rest = "ESTAB?", tokens[4:]  # a state filter hides the State column
            local, peer = tokens[2], tokens[3]
        elif raw[:1].isspace() and parsed.conns:
            _ss_extras(parsed.conns[-1], s, file, n)
            continue
        else:
            raise ConfigError(f"not an ss socket line: {s[:60]!r}", file=file, line=n,
                              allowed="`ss -nte` / `ss -nteo` lines: State Recv-Q Send-Q Local Peer [timer:(...)]")
        conn = SsConn(line=n, state=state, local=local, peer=peer)
        _ss_extras(conn, " ".join(rest), file, n)
        parsed.conns.append(conn)
    parsed.title = f"ss output: {len(parsed.conns)} socket(s)"
    return parsed


def _ss_extras(conn: SsConn, text: str, file: str, line: int) -> None:
    t = _TIMER.search(text)
    if t:
        conn.timer, conn.timer_text, conn.count = t["kind"], t["time"], int(t["count"])
        try:
            conn.left_s, conn.left_resolution_s = parse_ms_timer(t["time"])
        except ValueError as exc:
            raise ConfigError(str(exc), file=file, line=line, key="timer",
                              allowed="print_ms_timer forms: 4min48sec, 10min, 12sec, 1.988ms (old: seconds), "
                                      "1.988sec, 088ms, or empty") from None
    for key in ("uid", "ino", "sk"):
        m = re.search(rf"(?:^|\s){key}:(\S+)", text)
        if m:
            conn.extras[key] = m.group(1)


# ----------------------------------------------------------------------------- sysctl
_SYSCTL = re.compile(r"^(?P<key>[A-Za-z0-9_][A-Za-z0-9_.\-/]*)\s*=\s*(?P<value>.*)$")
_PROC = re.compile(r"^/proc/sys/(?P<key>[A-Za-z0-9_./\-]+):(?P<value>.*)$")  # grep . /proc/sys/net/ipv4/tcp_*


def _sysctl_lines(text: str) -> list[tuple[int, str, str]] | None:
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        s = raw.strip()
        if not s or s.startswith(("#", ";", "$", "sysctl:")):  # comments, prompts, `sysctl -a 2>&1` errors
            continue
        m = _SYSCTL.match(s) or _PROC.match(s)
        if not m:
            return None
        key = m["key"].replace("/", ".") if m.re is _PROC else m["key"]
        out.append((n, key, m["value"].strip()))
    return out or None


def _looks_like_sysctl(text: str) -> bool:
    return _sysctl_lines(text) is not None


def parse_sysctl(text: str, file: str) -> Parsed:
    """``sysctl -a`` / sysctl.conf lines (``key = value``) or ``grep . /proc/sys/...`` lines. Only
    the keepalive and retransmission sysctls the model reads are kept; their ranges are checked."""
    entries = _sysctl_lines(text) or []
    parsed = Parsed(kind="sysctl", file=file, title=f"sysctl lines: {len(entries)} setting(s)",
                    sysctl_lines=len(entries))
    for n, key, value in entries:
        if key not in SYSCTL_RANGES:
            continue
        lo, hi = SYSCTL_RANGES[key]
        if not re.fullmatch(r"-?[0-9]+", value) or not lo <= int(value) <= hi:
            raise ConfigError(f"{value!r} is rejected by the kernel", file=file, line=n, key=key,
                              allowed=f"integers {lo}..{hi}")
        parsed.sysctl[key] = (int(value), n)  # a later line wins, as with `sysctl -p`
    return parsed

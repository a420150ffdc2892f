"""Envoy ``config_dump`` and ``istioctl proxy-config ... -o json`` output: every Listener's
``socket_options`` and every Cluster's ``upstream_connection_options.tcp_keepalive`` and
``upstream_bind_config.socket_options``, in either protobuf JSON spelling (istioctl prints
camelCase: ``socketOptions``, ``intValue``, ``portValue``; the admin endpoint prints snake_case).

Cluster socket options are applied as Envoy applies them (envoyproxy/envoy
source/common/upstream/upstream_impl.cc ``buildBaseSocketOptions``/``buildClusterSocketOptions``):
first the tcp_keepalive options, then the cluster's ``upstream_bind_config.socket_options`` (or,
when it has none, the bootstrap's ``cluster_manager.upstream_bind_config.socket_options``), so
the bind-config options win.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sim.config.yamlio import MAX_DEPTH, dotted
from sim.errors import ConfigError
from sim.integrations.model import ALLOWED_INPUTS, HopDecl, Lines, Parsed, SockOpt, line_of, pick, pick_path, to_int
from sim.integrations.sockopt import parse_envoy_tcp_keepalive, parse_socket_options, zero_keepalive_effect

_LISTENER_T = "envoy.config.listener.v3.Listener"
_CLUSTER_T = "envoy.config.cluster.v3.Cluster"
_STATE_KEYS = {"active_state": "active", "warming_state": "warming", "draining_state": "draining",
               "activeState": "active", "warmingState": "warming", "drainingState": "draining"}


# ----------------------------------------------------------------------------- JSON
def load_json(text: str, file: str) -> tuple[Any, str]:
    """(data, repair note). Strict JSON first; then the repairs a pasted excerpt such as the seed's
    needs: ``...`` lines dropped, trailing commas removed, a bare ``"key": [...]`` wrapped in braces
    and unclosed brackets closed. (None, "") when it is not JSON at all. Nesting deeper than the YAML
    reader's limit is an error (json.loads would raise RecursionError)."""
    _check_depth(text, file)
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


_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _check_depth(text: str, file: str) -> None:
    depth = 0
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, m.start()) + 1
                raise ConfigError(f"JSON nested deeper than {MAX_DEPTH} levels", file=file, line=line,
                                  allowed=f"at most {MAX_DEPTH} levels of objects and arrays")
        elif ch in "]}":
            depth -= 1


def _unclosed(text: str) -> str:
    """The closing brackets that ``text`` is missing, outside JSON strings."""
    stack: list[str] = []
    for m in _BRACKETS.finditer(text):
        ch = m.group()
        if ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]" and stack and stack[-1] == ch:
            stack.pop()
    return "".join(reversed(stack))


# ----------------------------------------------------------------------------- Envoy objects
def _is_listener(obj: dict) -> bool:
    if str(obj.get("@type", "")).endswith(_LISTENER_T):
        return True
    return pick(obj, "address")[0] is not None and any(
        pick(obj, k)[0] is not None for k in ("filter_chains", "socket_options", "listener_filters",
                                              "default_filter_chain"))


def _is_cluster(obj: dict) -> bool:
    if str(obj.get("@type", "")).endswith(_CLUSTER_T):
        return True
    return "name" in obj and any(pick(obj, k)[0] is not None for k in (
        "upstream_connection_options", "connect_timeout", "eds_cluster_config", "load_assignment",
        "upstream_bind_config"))


def from_envoy_objects(data: Any, file: str, lines: Lines | None, base: tuple = ()) -> Parsed:
    """Every Envoy Listener and Cluster in a config_dump (any of its sections, a bare list as
    ``istioctl proxy-config listener -o json`` prints it, or one object)."""
    parsed = Parsed(kind="config_dump", file=file, title="Envoy config_dump")
    walker = _Walker(parsed, file, lines)
    walker.bootstrap_bind(data, base)
    walker.walk(data, base, None)
    if not parsed.hops:
        raise ConfigError("no Envoy listener or cluster found", file=file, allowed=ALLOWED_INPUTS)
    n_l = sum(h.side == "listener" for h in parsed.hops)
    parsed.title = f"Envoy config_dump: {n_l} listener(s), {len(parsed.hops) - n_l} cluster(s)"
    return parsed


class _Walker:
    def __init__(self, parsed: Parsed, file: str, lines: Lines | None) -> None:
        self.parsed, self.file, self.lines = parsed, file, lines
        self.seen: set = set()
        self.cm_bind: list[SockOpt] | None = None  # bootstrap cluster_manager.upstream_bind_config.socket_options

    def bootstrap_bind(self, data: Any, base: tuple) -> None:
        """The bootstrap's cluster-manager-wide bind socket options (used by clusters without their own)."""
        configs = data.get("configs") if isinstance(data, dict) else None
        for i, cfg in enumerate(configs if isinstance(configs, list) else []):
            path, opts = pick_path(cfg, "bootstrap", "cluster_manager", "upstream_bind_config", "socket_options")
            if opts is not None:
                self.cm_bind = parse_socket_options(opts, self.file, self.lines, base + ("configs", i) + path)

    def walk(self, node: Any, path: tuple, state: str | None) -> None:
        if isinstance(node, list):
            for i, v in enumerate(node):
                self.walk(v, path + (i,), state)
            return
        if not isinstance(node, dict):
            return
        key: tuple  # a listener is told apart by its port and state too
        if _is_listener(node):
            hop = self.listener(node, path, state)
            key = ("listener", hop.name, hop.port, state)
        elif _is_cluster(node):
            hop = self.cluster(node, path)
            key = ("cluster", hop.name)
        else:
            for k, v in node.items():
                self.walk(v, path + (k,), _STATE_KEYS.get(k, state))
            return
        if key not in self.seen:  # the bootstrap and ListenersConfigDump both list static listeners
            self.seen.add(key)
            self.parsed.hops.append(hop)

    def listener(self, obj: dict, path: tuple, state: str | None) -> HopDecl:
        apath, sa = pick_path(obj, "address", "socket_address")
        sa = sa if isinstance(sa, dict) else {}
        pkey, port = pick(sa, "port_value")
        port = to_int(port, self.file, dotted(path + apath + (str(pkey),)), line_of(self.lines, path + apath)) \
            if port is not None else None
        name = str(obj.get("name") or f"{sa.get('address', '?')}_{port}")
        _, bind = pick(obj, "bind_to_port")
        if isinstance(bind, dict):
            bind = bind.get("value")
        hop = HopDecl(side="listener", name=name, origin="config_dump", port=port, listener_state=state,
                      source=f"config_dump {dotted(path)}", line=line_of(self.lines, path),
                      bind_to_port=bind if isinstance(bind, bool) else None)
        key, opts = pick(obj, "socket_options", self.file, self.lines, path)
        if key is not None:
            hop.socket_options = parse_socket_options(opts, self.file, self.lines, path + (key,))
        if pick(obj, "tcp_keepalive")[0] is not None:
            # Envoy PR #41934 (2025) added a listener-level tcp_keepalive; its units are not settled in
            # the sources we have, so it is reported but not decoded.
            hop.notes.append("has a listener-level tcp_keepalive field (Envoy PR #41934): not decoded here; "
                             "only socket_options are used")
        return hop

    def cluster(self, obj: dict, path: tuple) -> HopDecl:
        hop = HopDecl(side="cluster", name=str(obj.get("name", "?")), origin="config_dump",
                      source=f"config_dump {dotted(path)}", line=line_of(self.lines, path))
        kpath, ka = pick_path(obj, "upstream_connection_options", "tcp_keepalive")
        if len(kpath) == 2:
            values, keys, zeros = parse_envoy_tcp_keepalive(ka, self.file, self.lines, path + kpath)
            hop.tcp_keepalive = values
            hop.ka_sources = {k: f"tcp_keepalive.{v}" for k, v in keys.items()}
            if zeros:
                hop.zeros = {k: f"tcp_keepalive.{k}" for k in zeros}
                hop.broken = zero_keepalive_effect(", ".join(f"tcp_keepalive.{k}" for k in zeros))
        bpath, bind = pick_path(obj, "upstream_bind_config", "socket_options")
        if len(bpath) == 2:
            hop.socket_options = parse_socket_options(bind, self.file, self.lines, path + bpath)
        elif self.cm_bind is not None and pick(obj, "upstream_bind_config")[0] is None:
            hop.socket_options = list(self.cm_bind)
            hop.notes.append(f"cluster {hop.name}: socket options from the bootstrap's cluster_manager."
                             "upstream_bind_config (the cluster has no upstream_bind_config of its own)")
        return hop


def socket_options_excerpt(data: Any, file: str, lines: Lines | None, base: tuple = ()) -> Parsed | None:
    """A bare ``socket_options`` list (or one SocketOption, or ``{socket_options: [...]}``), as pasted
    from docs or an issue: one listener-side hop whose listener is unknown. None if it is not one."""
    opts, path = None, base
    if isinstance(data, dict):
        key, value = pick(data, "socket_options")
        if key is not None and len(data) == 1:
            opts, path = value, base + (key,)
        elif {"level", "name"} <= set(data):
            opts = [data]
    elif isinstance(data, list) and data and all(isinstance(x, dict) and {"level", "name"} <= set(x) for x in data):
        opts = data
    if opts is None:
        return None
    parsed = Parsed(kind="config_dump", file=file, title="socket_options excerpt")
    hop = HopDecl(side="listener", name="(excerpt: listener unknown)", origin="excerpt", source="socket_options",
                  line=line_of(lines, path))
    if isinstance(data, dict) and "level" in data:
        hop.socket_options = parse_socket_options([data], file, {((0,) + k): v for k, v in (lines or {}).items()},
                                                  (0,))
    else:
        hop.socket_options = parse_socket_options(opts, file, lines, path)
    parsed.hops.append(hop)
    return parsed

"""Istio EnvoyFilter ``LISTENER`` and ``CLUSTER`` patches, merged per target as Istio applies them.

Istio applies every patch whose match selects a listener (or cluster) to it, in order
(istio/istio pilot/pkg/networking/core/envoyfilter/listener_patch.go ``patchListener``,
cluster_patch.go). ``MERGE`` is a protobuf merge (pkg/proto/merge/merge.go): scalar and message
fields are merged field by field and **repeated fields such as socket_options are appended**;
``MERGE_AND_REPLACE_LIST`` replaces a list the patch sets (envoyfilter/util.go
``mergePatchValue``). Patch values are read by the legacy jsonpb, so ``socket_options`` and
``socketOptions`` both work (pkg/config/xds/xds.go ``BuildXDSObjectFromStruct``).

EnvoyFilters select proxies by namespace and workloadSelector; filters of one input that select
the same proxies are merged in ``spec.priority`` order, then in document order (Istio's tie-break
is the creation time, which a manifest does not carry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sim.config.yamlio import dotted
from sim.errors import ConfigError
from sim.integrations.model import HopDecl, Lines, SockOpt, get, line_of, pick, pick_path, to_int
from sim.integrations.sockopt import parse_envoy_tcp_keepalive, parse_socket_options, zero_keepalive_effect

_MERGES = ("MERGE", "MERGE_AND_REPLACE_LIST")


@dataclass
class _Patch:
    side: str  # listener | cluster
    index: int
    filter_name: str
    line: int | None
    context: str
    name: str | None
    port: int | None
    op: str
    options: list[SockOpt] | None = None  # socket_options (listener) / upstream_bind_config.socket_options
    keepalive: dict[str, int | None] | None = None  # cluster tcp_keepalive values
    ka_keys: dict[str, str] = field(default_factory=dict)
    zeros: list[str] = field(default_factory=list)
    sets_socket_options: bool = False
    removes: bool = False


def _patch(p: dict, i: int, fname: str, side: str, lines: Lines, where: tuple, file: str) -> _Patch:
    raw_match, match, sub = p.get("match"), {}, {}
    if isinstance(raw_match, dict):
        match = raw_match
        if isinstance(raw_match.get(side), dict):
            sub = raw_match[side]
    context = str(match.get("context", "ANY"))
    port = sub.get("portNumber")
    port = to_int(port, file, dotted(where + ("match", side, "portNumber")),
                  line_of(lines, where + ("match", side, "portNumber"))) if port is not None else None
    if side == "listener":
        name = sub.get("name")
    else:
        name = sub.get("name") or sub.get("service")
        if sub.get("subset"):
            name = f"{name or '*'} subset {sub['subset']}"
    op = str(get(p, "patch", "operation") or "")
    out = _Patch(side, i, fname, line_of(lines, where), context, str(name) if name else None, port, op,
                 removes=op == "REMOVE")
    value = get(p, "patch", "value")
    vpath = where + ("patch", "value")
    if not isinstance(value, dict):
        return out
    if op in ("ADD", "REPLACE") and out.name is None:  # a whole object: its own name and port
        out.name = str(value.get("name")) if value.get("name") else None
        _, pv = pick_path(value, "address", "socket_address", "port_value")
        if side == "listener" and pv is not None:
            out.port = to_int(pv, file, "port_value", None)
    if side == "listener":
        key, opts = pick(value, "socket_options", file, lines, vpath)
        if key is not None:
            out.options = parse_socket_options(opts, file, lines, vpath + (key,))
            out.sets_socket_options = True
    else:
        kpath, ka = pick_path(value, "upstream_connection_options", "tcp_keepalive")
        if len(kpath) == 2:
            out.keepalive, out.ka_keys, out.zeros = parse_envoy_tcp_keepalive(ka, file, lines, vpath + kpath)
        bpath, bopts = pick_path(value, "upstream_bind_config", "socket_options")
        if len(bpath) == 2:
            out.options = parse_socket_options(bopts, file, lines, vpath + bpath)
            out.sets_socket_options = True
    return out


def _selects(p: _Patch, context: str, name: str | None, port: int | None) -> bool:
    if not (p.context == "ANY" or context == "ANY" or p.context == context):
        return False
    return (p.name is None or p.name == name) and (p.port is None or p.port == port)


def _implied_port(name: str | None) -> int | None:
    """Istio names listeners ADDRESS_PORT (``0.0.0.0_8080``): the port a name implies."""
    m = re.search(r"_(\d{1,5})$", name or "")
    return int(m.group(1)) if m else None


def _targets(patches: list[_Patch]) -> list[tuple[str, str | None, int | None]]:
    """The distinct objects the patches name, most specific first; a port-only target is folded into a
    named one whose name implies that port (both patches then apply to that listener)."""
    out: list[tuple[str, str | None, int | None]] = []
    for p in patches:
        if p.name is None and p.port is None:
            continue
        t = (p.context, p.name, p.port if p.port is not None else _implied_port(p.name) if p.side == "listener"
             else None)
        if t not in out:
            out.append(t)
    named = [t for t in out if t[1] is not None]
    return [t for t in out if t[1] is not None or not any(n[2] == t[2] and _selects(
        _Patch("", 0, "", None, t[0], None, None, ""), n[0], n[1], n[2]) for n in named)]


def merge_patches(patches: list[_Patch], side: str) -> tuple[list[HopDecl], list[str]]:
    """One hop per target with every patch that selects it applied in order (see the module doc)."""
    notes: list[str] = []
    hops: list[HopDecl] = []
    targets = _targets(patches)
    wild = [p for p in patches if p.name is None and p.port is None]
    label = "every"
    if wild:
        contexts = sorted({p.context for p in wild})
        label = "every other" if targets else "every"
        targets += [(c, None, None) for c in contexts]
    for context, name, port in targets:
        applied = [p for p in patches if _selects(p, context, name, port)
                   and (name is not None or port is not None or p.name is None and p.port is None)]
        hop = _apply(applied, side, context, name, port)
        if name is None and port is None:
            hop.name = f"{label} {context} {side}" if context != "ANY" else f"{label} {side}"
        if side == "cluster" and hop.tcp_keepalive is None and not hop.socket_options:
            idx = ", ".join(f"configPatches[{p.index}]" for p in applied)
            notes.append(f"CLUSTER patch {idx} ({hop.name}) sets no socket option and no tcp_keepalive: not a "
                         "keepalive hop")
            continue
        hops.append(hop)
    return hops, notes


def _apply(applied: list[_Patch], side: str, context: str, name: str | None, port: int | None) -> HopDecl:
    first = applied[0]
    by_filter: dict[str, list[str]] = {}
    for p in applied:
        by_filter.setdefault(p.filter_name, []).append(f"configPatches[{p.index}]")
    source = "; ".join(f"EnvoyFilter {f} {', '.join(idx)}" for f, idx in by_filter.items())
    hop = HopDecl(side=side, name=name or (f"port {port}" if port else "?"), origin="envoyfilter", source=source,
                  line=first.line, port=port, context=context)
    opts: list[SockOpt] | None = None
    ka: dict[str, int | None] | None = None
    zeros: dict[str, str] = {}
    for p in applied:
        if p.removes:  # Istio returns at a REMOVE: no later patch applies to the listener
            hop.notes.append(f"{side} {hop.name}: operation REMOVE (configPatches[{p.index}]) deletes it")
            opts, ka, zeros = None, None, {}
            break
        if p.op in ("ADD", "REPLACE"):
            opts, ka, zeros = None, None, {}  # a whole new object: nothing merged before it survives
        if p.sets_socket_options:
            if p.op == "MERGE_AND_REPLACE_LIST" or opts is None:
                opts = list(p.options or [])
            else:
                opts = opts + list(p.options or [])  # proto merge appends repeated fields
        if p.keepalive is not None:
            ka = dict(ka or {"idle": None, "interval": None, "count": None})
            for k, v in p.keepalive.items():
                if v is not None:
                    ka[k] = v
                    zeros.pop(k, None)
                    hop.ka_sources[k] = f"{p.filter_name} configPatches[{p.index}] tcp_keepalive.{p.ka_keys[k]}"
            for key in p.zeros:
                canon = {"keepalive_time": "idle", "keepaliveTime": "idle", "keepalive_interval": "interval",
                         "keepaliveInterval": "interval"}.get(key, "count")
                ka[canon] = None
                zeros[canon] = f"tcp_keepalive.{key} (configPatches[{p.index}])"
    if len(applied) > 1:
        hop.notes.append(f"{side} {hop.name}: {len(applied)} patches apply to it, merged in order as Istio does "
                         "(socket_options appended)")
    hop.socket_options, hop.tcp_keepalive, hop.zeros = opts, ka, zeros
    if zeros:
        hop.broken = zero_keepalive_effect(", ".join(zeros.values()))
    return hop


def envoyfilter_patches(doc: dict, lines: Lines, base: tuple, file: str) -> tuple[list[_Patch], list[str]]:
    """Every LISTENER and CLUSTER patch of one EnvoyFilter document, and notes on the others."""
    name = str(get(doc, "metadata", "name") or "(unnamed)")
    patches = get(doc, "spec", "configPatches")
    notes: list[str] = []
    if patches is None:
        patches = []
    if not isinstance(patches, list):
        where = base + ("spec", "configPatches")
        raise ConfigError("configPatches must be a list", file=file, line=line_of(lines, where), key=dotted(where),
                          allowed="a list of {applyTo, match, patch}")
    out: list[_Patch] = []
    ignored: dict[str, int] = {}
    for i, p in enumerate(patches):
        where = base + ("spec", "configPatches", i)
        if not isinstance(p, dict):
            raise ConfigError("each config patch is a mapping", file=file, line=line_of(lines, where),
                              key=dotted(where), allowed="{applyTo, match, patch}")
        apply = p.get("applyTo")
        if apply in ("LISTENER", "CLUSTER"):
            out.append(_patch(p, i, name, str(apply).lower(), lines, where, file))
        else:
            ignored[str(apply)] = ignored.get(str(apply), 0) + 1
    if ignored:
        notes.append("patches not about sockets ignored: " + ", ".join(f"{k} x{v}" for k, v in ignored.items()))
    if not out:
        notes.append(f"EnvoyFilter {name} has no LISTENER or CLUSTER patch: it sets no socket option")
    return out, notes


def selection_key(doc: dict) -> tuple:
    """Which proxies an EnvoyFilter selects: filters with equal keys patch the same proxies."""
    sel = get(doc, "spec", "workloadSelector", "labels")
    sel = sel if isinstance(sel, dict) else {}
    refs = get(doc, "spec", "targetRefs") or get(doc, "spec", "targetRef") or []
    return (str(get(doc, "metadata", "namespace") or ""), tuple(sorted((str(k), str(v)) for k, v in sel.items())),
            repr(refs))


def priority(doc: dict) -> int:
    """``spec.priority`` (default 0): lower applies first."""
    p = get(doc, "spec", "priority")
    return p if isinstance(p, int) and not isinstance(p, bool) else 0


def envoyfilter_hops(docs: list[tuple[dict, Lines, tuple]], file: str) -> tuple[list[HopDecl], list[str], list[str]]:
    """Hops of every EnvoyFilter of one input: (hops, titles, notes)."""
    groups: dict[tuple, list[tuple[int, int, list[_Patch]]]] = {}
    titles, notes = [], []
    for n, (doc, lines, base) in enumerate(docs):
        patches, nt = envoyfilter_patches(doc, lines, base, file)
        notes += nt
        titles.append(f"EnvoyFilter {get(doc, 'metadata', 'name') or '(unnamed)'}")
        groups.setdefault(selection_key(doc), []).append((priority(doc), n, patches))
    hops: list[HopDecl] = []
    for members in groups.values():
        ordered = [p for _, _, ps in sorted(members, key=lambda m: (m[0], m[1])) for p in ps]
        for side in ("listener", "cluster"):
            h, nt = merge_patches([p for p in ordered if p.side == side], side)
            hops += h
            notes += nt
    return hops, titles, notes


def check_api_version(doc: dict, kind: str, lines: Lines, base: tuple, file: str) -> None:
    """kubectl rejects an object without apiVersion, or with a version that does not serve the kind."""
    served = {"EnvoyFilter": ("networking.istio.io/v1alpha3",),
              "DestinationRule": ("networking.istio.io/v1alpha3", "networking.istio.io/v1beta1",
                                  "networking.istio.io/v1"),
              "IstioOperator": ("install.istio.io/v1alpha1",), "ConfigMap": ("v1",)}.get(kind)
    api: Any = doc.get("apiVersion")
    if served is None:
        return
    if api is None:
        raise ConfigError(f"{kind} without apiVersion: kubectl rejects it", file=file,
                          line=line_of(lines, base + ("kind",)), key="apiVersion", allowed=", ".join(served))
    if api not in served:
        raise ConfigError(f"{api!r} does not serve kind {kind}: kubectl rejects it", file=file,
                          line=line_of(lines, base + ("apiVersion",)), key="apiVersion", allowed=", ".join(served))

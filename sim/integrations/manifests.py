"""YAML inputs: Istio EnvoyFilters, DestinationRules, mesh config (IstioOperator ``meshConfig``,
Helm values ``meshConfig``, the ``istio`` ConfigMap's ``mesh`` key), config_dump in YAML form and
bare ``socket_options`` excerpts; several documents or a ``kind: List`` are fine.

Mesh-wide keepalive is applied first and each DestinationRule on top of it, as Istio does.
"""

from __future__ import annotations

import re
from typing import Any

from sim.config.yamlio import read_yaml_docs
from sim.errors import ConfigError
from sim.integrations.config_dump import from_envoy_objects, socket_options_excerpt
from sim.integrations.destinationrule import (
    MeshKeepalive,
    apply_mesh,
    destinationrule_hops,
    finish_dr_hops,
    read_mesh_config,
)
from sim.integrations.envoyfilter import check_api_version, envoyfilter_hops
from sim.integrations.model import ALLOWED_INPUTS, HopDecl, Lines, Parsed, get, line_of

_READ = ("EnvoyFilter", "DestinationRule", "IstioOperator", "ConfigMap")


def _mesh_from_configmap(obj: dict, lines: Lines, base: tuple, file: str, text: str) -> MeshKeepalive | None:
    """The ``mesh`` key of the ``istio`` ConfigMap is MeshConfig as a YAML string: read it with its
    lines mapped back into the file (for a ``|`` block, inner line k is k lines below the key)."""
    inner = get(obj, "data", "mesh")
    if not isinstance(inner, str):
        return None
    key_line = line_of(lines, base + ("data", "mesh")) or 1
    rows = text.splitlines()
    block = key_line <= len(rows) and re.search(r":\s*[|>][-+0-9]*\s*(#.*)?$", rows[key_line - 1])
    try:
        docs = read_yaml_docs(inner, file, what="the mesh config in data.mesh is not valid YAML")
    except ConfigError as exc:  # point into the file, not into the string
        line = key_line + exc.line if block and exc.line else key_line
        raise ConfigError(exc.problem, file=file, line=line, key="data.mesh" + (f".{exc.key}" if exc.key else ""),
                          allowed=exc.allowed) from None
    if not docs:
        return None
    mesh, mlines = docs[0]
    shifted = {k: (v + key_line if block else key_line) for k, v in mlines.items()}
    title = f"ConfigMap {get(obj, 'metadata', 'name') or '?'} data.mesh"
    return read_mesh_config(mesh, shifted, (), file, title)


def parse_yaml(text: str, file: str) -> Parsed:
    """Every YAML document: hops from EnvoyFilters, DestinationRules (with mesh-wide keepalive
    applied) and config_dumps; a document inspect does not read is an error if nothing else is read."""
    docs = read_yaml_docs(text, file, what="not a recognised input: neither JSON, `ss` output, sysctl lines nor "
                                           "valid YAML")
    if not docs:
        raise ConfigError("no YAML document", file=file, allowed=ALLOWED_INPUTS)
    hops: list[HopDecl] = []
    notes: list[str] = []
    kinds: list[str] = []
    titles: list[str] = []
    rejected: list[ConfigError] = []
    filters: list[tuple[dict, Lines, tuple]] = []
    mesh: list[MeshKeepalive] = []
    for n, (doc, lines) in enumerate(docs):
        items: list[tuple[Any, tuple]] = [(doc, ())]
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            items = [(it, ("items", i)) for i, it in enumerate(doc["items"])]  # kubectl get -o yaml
        for obj, base in items:
            kind = obj.get("kind") if isinstance(obj, dict) else None
            if kind in _READ:
                check_api_version(obj, kind, lines, base, file)
            if kind == "EnvoyFilter":
                filters.append((obj, lines, base))
                kinds.append("envoyfilter")
            elif kind == "DestinationRule":
                h, t, nt = destinationrule_hops(obj, lines, base, file)
                hops += h
                notes += nt
                kinds.append("destinationrule")
                titles.append(t)
            elif kind == "IstioOperator" or (kind is None and isinstance(obj, dict) and "meshConfig" in obj):
                where = base + (("spec", "meshConfig") if kind else ("meshConfig",))
                title = f"IstioOperator {get(obj, 'metadata', 'name') or '?'}" if kind else "Helm values"
                m = read_mesh_config(get(obj, *where[len(base):]), lines, where, file, title)
                kinds.append("meshconfig")
                titles.append(title + ("" if m else " (no tcpKeepalive)"))
                if m:
                    mesh.append(m)
            elif kind == "ConfigMap" and isinstance(get(obj, "data", "mesh"), str):
                m = _mesh_from_configmap(obj, lines, base, file, text)
                kinds.append("meshconfig")
                titles.append(f"ConfigMap {get(obj, 'metadata', 'name') or '?'} mesh config"
                              + ("" if m else " (no tcpKeepalive)"))
                if m:
                    mesh.append(m)
            elif isinstance(obj, dict) and kind is None and {"envoy", "lb", "sweep"} & set(obj):
                rejected.append(ConfigError("this is a sim scenario config, not a deployed artefact", file=file,
                                            line=1, allowed="`python -m sim recommend CONFIG --emit ...` for a "
                                            "scenario; inspect reads " + ALLOWED_INPUTS))
            elif isinstance(obj, (dict, list)) and kind is None:
                p = socket_options_excerpt(obj, file, lines, base)
                try:  # config_dump / istioctl proxy-config output in YAML form
                    p = p or from_envoy_objects(obj, file, lines, base)
                except ConfigError as exc:
                    rejected.append(exc)
                    continue
                hops += p.hops
                notes += p.notes
                kinds.append("config_dump")
                titles.append(p.title)
            else:
                what = f"{kind!r}" if kind else f"a YAML {type(obj).__name__}"
                where = base + ("kind",) if kind else base
                rejected.append(ConfigError(f"{what} is not an input inspect reads", file=file,
                                            line=line_of(lines, where) or 1, key="kind" if kind else "",
                                            allowed=ALLOWED_INPUTS))
                if kind:
                    notes.append(f"document {n + 1}: kind {kind} ignored")
    if filters:
        ef_hops, ef_titles, ef_notes = envoyfilter_hops(filters, file)
        hops = ef_hops + hops
        titles = ef_titles + titles
        notes += ef_notes
    if mesh:
        hops += apply_mesh(hops, mesh)
    finish_dr_hops(hops)
    if not kinds:
        raise rejected[0] if rejected else ConfigError("not a recognised input", file=file, allowed=ALLOWED_INPUTS)
    kind = kinds[0] if len(set(kinds)) == 1 else "manifests"
    return Parsed(kind=kind, file=file, title="; ".join(titles), hops=hops, notes=notes)

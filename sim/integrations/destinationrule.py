"""Istio ``tcpKeepalive`` as Istio turns it into Envoy's cluster ``TcpKeepalive``: in a
DestinationRule (top level, ``portLevelSettings``, ``subsets``) and mesh-wide in MeshConfig
(``meshConfig.tcpKeepalive``; ``meshConfig.defaultTrafficPolicy.connectionPool`` in recent Istio).

Istio's conversion (istio/istio pilot/pkg/networking/core/cluster.go, ``applyTCPKeepalive`` and
``setKeepAliveSettings``): the mesh-wide values are applied first, then the DestinationRule's,
field by field; ``probes`` is used only when > 0; ``time`` and ``interval`` become
``uint32(d.Seconds)``: whole seconds, truncated. Durations are Go durations (:mod:`godur`).
"""

from __future__ import annotations

from typing import Any

from sim.config.yamlio import dotted
from sim.errors import ConfigError
from sim.facts.kernel import MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL
from sim.integrations.godur import ALLOWED as GO_ALLOWED
from sim.integrations.godur import parse_go_duration
from sim.integrations.model import HopDecl, Lines, get, line_of, to_int
from sim.integrations.sockopt import zero_keepalive_effect

ISTIO_KA = {"time": "idle", "interval": "interval", "probes": "count"}
_MAX = {"idle": (MAX_TCP_KEEPIDLE, "TCP_KEEPIDLE"), "interval": (MAX_TCP_KEEPINTVL, "TCP_KEEPINTVL")}
_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


class IstioKeepalive:
    """One ``tcpKeepalive`` block as read: values (seconds, probes; None = not set), where each came
    from, the notes it needs (truncation) and the values that truncated to 0 s."""

    def __init__(self) -> None:
        self.values: dict[str, int | None] = {"idle": None, "interval": None, "count": None}
        self.sources: dict[str, str] = {}
        self.notes: list[str] = []
        self.zeros: dict[str, str] = {}


def istio_seconds(value: Any, file: str, where: tuple, lines: Lines, *, crd_validated: bool) -> tuple[int, str]:
    """(whole seconds as Istio hands them to Envoy, a note when that truncated the value).

    A DestinationRule's durations also pass its CRD rule ``duration(self) >= duration('1ms')`` and
    istiod's webhook (``ValidateDuration``: >= 1 ms, whole milliseconds); MeshConfig's are not
    checked (``crd_validated=False``)."""
    line, key = line_of(lines, where), dotted(where)
    if not isinstance(value, str):
        raise ConfigError(f"{value!r} is not a duration string", file=file, line=line, key=key,
                          allowed=GO_ALLOWED + "; the CRD declares it `type: string`, so a bare number is rejected")
    try:
        ns = parse_go_duration(value)
    except ValueError as exc:
        problem, _, allowed = str(exc).partition(" (allowed: ")
        raise ConfigError(problem, file=file, line=line, key=key, allowed=allowed[:-1]) from None
    if ns < 0:
        raise ConfigError(f"{value!r} is negative", file=file, line=line, key=key, allowed="a duration >= 1ms")
    if crd_validated and ns < _NS_PER_MS:
        raise ConfigError(f"{value!r} is rejected by Istio: must be a valid duration greater than 1ms", file=file,
                          line=line, key=key, allowed="1ms or more (the CRD's x-kubernetes-validations rule and "
                          "istiod's ValidateDuration)")
    if crd_validated and ns % _NS_PER_MS:
        raise ConfigError(f"{value!r} is rejected by Istio: only durations to ms precision are supported", file=file,
                          line=line, key=key, allowed="whole milliseconds (istiod's ValidateDuration)")
    seconds = ns // _NS_PER_S
    note = ""
    if ns % _NS_PER_S:
        note = (f"{key} {value} is {seconds} s to Envoy: Istio keeps whole seconds (uint32(Duration.Seconds), "
                "pilot/pkg/networking/core/cluster.go)")
    return seconds, note


def read_istio_keepalive(raw: Any, file: str, lines: Lines, base: tuple, label: str, *,
                         crd_validated: bool) -> IstioKeepalive:
    """An Istio ``tcpKeepalive`` {time, interval, probes}; ``label`` says where it is (for sources)."""
    ka = IstioKeepalive()
    if raw is None:
        raw = {}  # `tcpKeepalive: {}`: SO_KEEPALIVE on, all from sysctls
    if not isinstance(raw, dict):
        raise ConfigError(f"{raw!r} should be a mapping", file=file, line=line_of(lines, base), key=dotted(base),
                          allowed="time, interval, probes")
    for k in raw:
        if k not in ISTIO_KA:
            raise ConfigError(f"unknown key {k!r}", file=file, line=line_of(lines, base + (k,)),
                              key=dotted(base + (k,)), allowed="time, interval, probes")
    for key, canon in ISTIO_KA.items():
        if raw.get(key) is None:
            continue
        where = base + (key,)
        at = f"{label}.{key}" + (f", line {line_of(lines, where)}" if line_of(lines, where) else "")
        if canon == "count":
            n = to_int(raw[key], file, dotted(where), line_of(lines, where), "an integer 0..4294967295")
            if n < 0 or n > 2**32 - 1:
                raise ConfigError(f"{n} is out of range", file=file, line=line_of(lines, where), key=dotted(where),
                                  allowed="0..4294967295 (uint32)")
            if n == 0:
                ka.notes.append(f"{dotted(where)}: 0 means unset to Istio (it copies probes only when > 0)")
                continue
            if n > MAX_TCP_KEEPCNT:
                raise ConfigError(f"TCP_KEEPCNT {n} is rejected by the kernel with EINVAL", file=file,
                                  line=line_of(lines, where), key=dotted(where), allowed=f"1..{MAX_TCP_KEEPCNT}")
        else:
            n, note = istio_seconds(raw[key], file, where, lines, crd_validated=crd_validated)
            if note:
                ka.notes.append(note)
            hi, option = _MAX[canon]
            if n == 0:
                ka.zeros[canon] = f"{label}.{key} {raw[key]}"
                ka.sources[canon] = at
                continue
            if n > hi:
                raise ConfigError(f"{option} {n} is rejected by the kernel with EINVAL", file=file,
                                  line=line_of(lines, where), key=dotted(where), allowed=f"1..{hi} s")
        ka.values[canon] = n
        ka.sources[canon] = at
    return ka


def destinationrule_hops(doc: dict, lines: Lines, base: tuple, file: str) -> tuple[list[HopDecl], str, list[str]]:
    """One cluster hop for the top-level trafficPolicy and one per subset / port that sets its own
    connectionPool. ``hop.tcp_keepalive`` holds the DestinationRule's own values only; the mesh-wide
    ones are applied on top by :func:`apply_mesh`."""
    name = get(doc, "metadata", "name") or "(unnamed)"
    host = get(doc, "spec", "host") or "?"
    spec = base + ("spec",)
    hops: list[HopDecl] = []

    def policy(tp: Any, where: tuple, label: str, always: bool) -> None:
        tp = tp if isinstance(tp, dict) else {}
        pool = tp.get("connectionPool")
        if pool is not None or always:
            tcp = get(pool, "tcp") if isinstance(pool, dict) else None
            hop = HopDecl(side="cluster", name=label, origin="destinationrule",
                          source=f"DestinationRule {name} {dotted(where[len(base):]) or 'spec'}",
                          line=line_of(lines, where + ("connectionPool",)) or line_of(lines, where))
            hop.pool_set = pool is not None
            if isinstance(tcp, dict) and "tcpKeepalive" in tcp:
                kpath = where + ("connectionPool", "tcp", "tcpKeepalive")
                ka = read_istio_keepalive(tcp["tcpKeepalive"], file, lines, kpath,
                                          f"DestinationRule {name} {dotted(kpath[len(base):])}", crd_validated=True)
                hop.tcp_keepalive, hop.ka_sources = dict(ka.values), dict(ka.sources)
                hop.notes += ka.notes
                hop.zeros = dict(ka.zeros)
            hops.append(hop)
        for j, pls in enumerate(tp.get("portLevelSettings") or []):
            if isinstance(pls, dict) and "connectionPool" in pls:
                port = get(pls, "port", "number")
                policy(pls, where + ("portLevelSettings", j), f"{label} port {port}", False)

    policy(get(doc, "spec", "trafficPolicy"), spec + ("trafficPolicy",), str(host), True)
    for k, sub in enumerate(get(doc, "spec", "subsets") or []):
        if isinstance(sub, dict):
            policy(sub.get("trafficPolicy"), spec + ("subsets", k, "trafficPolicy"),
                   f"{host} subset {sub.get('name', k)}", False)
    top = hops[0]
    for hop in hops[1:]:
        if hop.tcp_keepalive is None and top.tcp_keepalive is not None:
            # Istio merges a subset's or port's trafficPolicy field by field: its connectionPool replaces
            # the top-level one as a whole, tcpKeepalive included (pilot/pkg/model/destination_rule.go,
            # MergeTrafficPolicy).
            hop.notes.append(f"cluster {hop.name}: its own connectionPool replaces the top-level one as a whole, so "
                             "the top-level tcpKeepalive does not apply to it")
    return hops, f"DestinationRule {name} (host {host})", []


class MeshKeepalive:
    """Mesh-wide keepalive from MeshConfig: ``tcpKeepalive`` (every upstream cluster) and the
    ``defaultTrafficPolicy.connectionPool`` baseline (clusters whose DestinationRule sets no pool)."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.ka: IstioKeepalive | None = None
        self.pool_ka: IstioKeepalive | None = None
        self.pool_set = False
        self.line: int | None = None


def read_mesh_config(mesh: Any, lines: Lines, base: tuple, file: str, title: str) -> MeshKeepalive | None:
    """MeshConfig (``meshConfig`` of an IstioOperator or Helm values, or the ``mesh`` key of the
    ``istio`` ConfigMap) -> its keepalive settings; None when it has none."""
    if not isinstance(mesh, dict):
        return None
    out = MeshKeepalive(title)
    if "tcpKeepalive" in mesh:
        where = base + ("tcpKeepalive",)
        out.ka = read_istio_keepalive(mesh["tcpKeepalive"], file, lines, where, f"{title} meshConfig.tcpKeepalive",
                                      crd_validated=False)
        out.line = line_of(lines, where)
    pool = get(mesh, "defaultTrafficPolicy", "connectionPool")
    if isinstance(pool, dict):
        out.pool_set = True
        tcp = pool.get("tcp")
        if isinstance(tcp, dict) and "tcpKeepalive" in tcp:
            where = base + ("defaultTrafficPolicy", "connectionPool", "tcp", "tcpKeepalive")
            out.pool_ka = read_istio_keepalive(tcp["tcpKeepalive"], file, lines, where,
                                               f"{title} meshConfig.defaultTrafficPolicy.connectionPool.tcp."
                                               "tcpKeepalive", crd_validated=False)
            out.line = out.line or line_of(lines, where)
    if isinstance(mesh.get("defaultConfig"), dict) and "tcpKeepalive" in mesh["defaultConfig"]:
        where = base + ("defaultConfig", "tcpKeepalive")
        raise ConfigError("ProxyConfig has no tcpKeepalive field: Istio rejects it", file=file,
                          line=line_of(lines, where), key=dotted(where),
                          allowed="meshConfig.tcpKeepalive for every upstream cluster (MeshConfig field 28)")
    return out if (out.ka or out.pool_set) else None


def apply_mesh(hops: list[HopDecl], mesh: list[MeshKeepalive]) -> list[HopDecl]:
    """Istio's order for each DestinationRule hop: mesh-wide tcpKeepalive first, then the pool's own
    (the DestinationRule's, or the mesh default pool's when the DestinationRule sets none), field by
    field. Adds a hop for the clusters no DestinationRule covers. Returns the new hops."""
    added: list[HopDecl] = []
    for m in mesh:
        for hop in [h for h in hops if h.origin == "destinationrule"]:
            layers: list[IstioKeepalive | None] = [m.ka]
            own = hop.tcp_keepalive is not None
            if not hop.pool_set and m.pool_set:
                layers.append(m.pool_ka)  # the mesh default pool stands in for the missing one
                own = False
            _merge_into(hop, [x for x in layers if x], own)
        other = HopDecl(side="cluster", name="every upstream cluster" + (" without a DestinationRule" if hops else ""),
                        origin="meshconfig", source=f"{m.title} meshConfig", line=m.line)
        _merge_into(other, [x for x in (m.ka, m.pool_ka) if x], False)
        added.append(other)
    return added


def _merge_into(hop: HopDecl, layers: list[IstioKeepalive], keep_own: bool) -> None:
    """Apply mesh layers under the hop's own values (its own win, field by field)."""
    if not layers:
        return
    vals: dict[str, int | None] = {"idle": None, "interval": None, "count": None}
    src: dict[str, str] = {}
    zeros: dict[str, str] = {}
    own = [(hop.tcp_keepalive or {}, dict(hop.ka_sources), dict(hop.zeros))] if keep_own else []
    for values, sources, zs in [(x.values, x.sources, x.zeros) for x in layers] + own:
        for k, v in values.items():
            if v is not None or k in zs:
                vals[k], src[k] = v, sources[k]
                zeros.pop(k, None)
        zeros.update(zs)
    for layer in layers:
        hop.notes += layer.notes
    hop.tcp_keepalive, hop.ka_sources, hop.zeros = vals, src, zeros
    hop.broken = zero_keepalive_effect(", ".join(zeros.values())) if zeros else None


def finish_dr_hops(hops: list[HopDecl]) -> None:
    """Flag hops whose own values truncated to 0 s (mesh layers, when any, were merged already)."""
    for hop in hops:
        if hop.zeros and hop.broken is None:
            hop.broken = zero_keepalive_effect(", ".join(hop.zeros.values()))

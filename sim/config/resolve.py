"""A validated scenario resolved into the world spec the model builds from (sim.spec)."""

from __future__ import annotations

import math

from sim.config.hostcfg import KeepaliveCfg, KernelCfg
from sim.config.profiles import middlebox_spec
from sim.config.schema import Scenario, lb_list
from sim.config.storm_rules import reconnect_spec, storm_spec
from sim.spec import (
    ClassSpec,
    ClientSpec,
    DistSpec,
    EnvoySpec,
    FaultSpec,
    GrpcSpec,
    HostSpec,
    ServerSpec,
    Shortcuts,
    SocketSpec,
    TrafficSpec,
    WorldSpec,
)
from sim.spec.classes import class_counts


def socket_spec(ka: KeepaliveCfg, user_timeout_s: float, syncnt: int | None = None) -> SocketSpec:
    """Config keepalive → socket options (a missing value falls back to the sysctl, R1; a missing
    TCP_SYNCNT to tcp_syn_retries, kernel-lifecycle.md R43)."""
    return SocketSpec(keepalive=ka.enabled, idle_s=ka.idle or 0, intvl_s=ka.interval or 0, count=ka.count or 0,
                      user_timeout_ms=int(round(user_timeout_s * 1000)), syncnt=syncnt or 0)


def host_spec(name: str, base: KernelCfg, over: KernelCfg) -> HostSpec:
    """A host's kernel: the scenario-wide block with the host's overrides (R2 defaults filled in)."""
    hz, exact, sysctl = base.merged(over).resolved()
    return HostSpec(name, hz, exact, tuple(sorted(sysctl.items())))


def request_limit(listener) -> tuple[float, str]:
    """The shorter of Envoy's route timeout and stream idle timeout (seconds, reason), or
    ``(0.0, "")`` when both are off. No bytes flow on a waiting stream in this model, so both count
    from the request."""
    limits = [(t, r) for t, r in ((listener.route_timeout, "route_timeout"),
                                  (listener.stream_idle_timeout, "stream_idle_timeout")) if t > 0]
    return min(limits) if limits else (0.0, "")


def _h2_keepalive(ka) -> tuple[float, float]:
    """(interval_s, timeout_s) of an ``http2_keepalive`` block, or (0, 0) when it is off."""
    return (ka.interval, ka.timeout) if ka is not None else (0.0, 0.0)


def _dist(d) -> DistSpec:
    kind, a, b = d.spec()
    return DistSpec(kind, a, b)


def client_instances(sc: Scenario) -> int:
    """The client machines behind the client's leg (``client.instances``; default one per slot): the
    pool size of a per-instance port budget there."""
    return sc.client.instances or sc.connections


def world_spec(sc: Scenario, shortcuts: Shortcuts | None = None) -> WorldSpec:
    """Everything the model needs for one replication of ``sc``; ``shortcuts``: the engine's
    work-saving shortcuts (default all on; ``Shortcuts.none()`` is the reference engine)."""
    base = sc.kernel
    envoy = None
    if sc.envoy:
        lst, ups = sc.envoy.listener, sc.envoy.upstream
        limit_s, reason = request_limit(lst) if lst.protocol != "tcp_proxy" else (0.0, "")
        envoy = EnvoySpec(
            host=host_spec("envoy", base, sc.envoy.kernel),
            listener_socket=socket_spec(lst.keepalive, lst.user_timeout),
            upstream_socket=socket_spec(ups.keepalive, ups.user_timeout, ups.syncnt), ds_idle_s=lst.idle_timeout,
            us_idle_s=ups.idle_timeout, tcp_proxy=lst.protocol == "tcp_proxy", retry_on_reset=ups.retry_on_reset,
            request_timeout_s=limit_s, request_timeout_reason=reason, connect_timeout_s=ups.connect_timeout,
            max_requests_per_connection=ups.max_requests_per_connection or 0, concurrency=sc.envoy.concurrency,
            replicas=sc.envoy.replicas,
            protocol=ups.protocol, max_concurrent_streams=ups.max_concurrent_streams,
            upstream_h2_keepalive=_h2_keepalive(ups.http2_keepalive),
            listener_h2_keepalive=_h2_keepalive(lst.http2_keepalive))
    grpc = sc.upstream.grpc
    classes = tuple(ClassSpec(c.name, c.share, _traffic(c.traffic, sc.config_dir), _client(base, c.client))
                    for c in sc.classes())
    return WorldSpec(
        name=sc.name, duration_s=sc.duration, connections=sc.connections, hop_s=sc.network.one_way_delay,
        traffic=classes[0].traffic, client=classes[0].client,
        server=ServerSpec(host_spec("upstream", base, sc.upstream.kernel),
                          socket_spec(sc.upstream.keepalive, sc.upstream.user_timeout), sc.upstream.idle_timeout,
                          GrpcSpec(grpc.min_ping_interval, grpc.max_ping_strikes, grpc.permit_without_calls)
                          if grpc else None, sc.upstream.close_on_fin),
        lb=tuple(middlebox_spec(c, client_instances(sc)) for c in lb_list(sc.lb)),
        envoy=envoy,
        # each Envoy instance is a client instance of the upstream leg
        upstream_lb=tuple(middlebox_spec(c, sc.envoy.replicas if sc.envoy else 1) for c in lb_list(sc.upstream.lb)),
        lb_host=host_spec("lb", base, KernelCfg()),
        shortcuts=shortcuts or Shortcuts(),
        faults=tuple(FaultSpec(f.at, math.inf if f.for_ is None else f.at + f.for_, f.leg, f.direction, f.packets,
                               f.action) for f in sc.faults),
        storm=storm_spec(sc),
        classes=classes, class_counts=class_counts([c.share for c in classes], sc.connections),
    )


def _traffic(t, config_dir: str) -> TrafficSpec:
    """One class's traffic (seconds, bytes)."""
    return TrafficSpec(t.ramp, _dist(t.request_gap), _dist(t.service_time), t.request_bytes, t.response_bytes,
                       t.process, tuple(sorted(t.params.items())), config_dir if t.process else "",
                       t.requests_per_connection or 0)


def _client(base: KernelCfg, client) -> ClientSpec:
    """One class's client: its host, its sockets and its application timers."""
    return ClientSpec(host_spec("client", base, client.kernel),
                      socket_spec(client.keepalive, client.user_timeout, client.syncnt),
                      client.request_timeout, client.ping_interval, client.pool.idle_timeout,
                      client.pool.max_lifetime, client.instances or 0, reconnect=reconnect_spec(client.reconnect))

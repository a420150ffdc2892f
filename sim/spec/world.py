"""World spec types: hosts, sockets, middleboxes, applications and Envoy, resolved (seconds, counts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sim.spec.storm import ReconnectSpec, StormSpec


@dataclass(frozen=True)
class SocketSpec:
    """The socket options an application sets (R1): SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT in whole
    seconds and probes (0 = the netns sysctl), TCP_USER_TIMEOUT in ms (0 = off), TCP_SYNCNT (0 = the
    netns tcp_syn_retries)."""

    keepalive: bool = False
    idle_s: int = 0
    intvl_s: int = 0
    count: int = 0
    user_timeout_ms: int = 0
    syncnt: int = 0


@dataclass(frozen=True)
class HostSpec:
    """A network namespace: timer-wheel HZ, ``exact`` (nominal timer times) or wheel timers, and its
    sysctls, every default filled in (R2)."""

    name: str
    hz: int = 250
    exact: bool = False
    sysctl: tuple[tuple[str, int], ...] = ()

    def sysctls(self) -> dict[str, int]:
        """The sysctls as a mapping (a copy)."""
        return dict(self.sysctl)


@dataclass(frozen=True)
class NlcuSpec:
    """AWS load-balancer capacity-unit dimensions and prices (an estimate, see the profile)."""

    new_flows_per_s: float
    active_flows: float
    bytes_per_hour: float
    price_per_nlcu_hour_usd: float
    price_per_hour_usd: float


@dataclass(frozen=True)
class MiddleboxSpec:
    """A middlebox: its profile with the config's overrides applied (durations in seconds)."""

    name: str
    idle_timeout_s: float
    refreshed_by: str = "any_packet"  # any_packet | payload
    on_expiry: str = "silent"  # silent | rst_both | fin_both
    late_from_client: str = "rst_to_sender"  # rst_to_sender | drop | new_flow
    late_from_server: str = "rst_to_sender"
    #: a terminating proxy (NLB TLS, ALB): the model then places its flow-table view on both of its
    #: legs, next to the proxy, with one flow shared by the two legs
    terminating: bool = False
    #: a terminating LB that answers a keepalive with its own on both legs (NLB TLS: every 20 s)
    keepalive_every_s: float = 0.0
    nlcu: NlcuSpec | None = None
    #: flow-table capacity in entries (None: no limit); a SYN that finds it full is dropped or
    #: answered with an RST (``on_full``: drop | rst)
    max_flows: int | None = None
    on_full: str = "drop"
    #: source ports per budget (None: no budget); one budget for the whole fleet (``destination``)
    #: or one per client instance (``client_instance``); a closed flow's port is held
    #: ``ports_reuse_s`` longer (docs/model.md, "Port budgets")
    ports_limit: int | None = None
    ports_per: str = "destination"
    ports_reuse_s: float = 0.0


@dataclass(frozen=True)
class DistSpec:
    """A distribution of durations in seconds: ``fixed`` a, ``exponential`` mean a, ``uniform`` a..b,
    ``lognormal`` median a and sigma b."""

    kind: str
    a: float
    b: float = 0.0


@dataclass(frozen=True)
class TrafficSpec:
    """The client's requests: connection i opens at i × ramp / connections; a gap after each
    response, or a user-written SimPy process (``process``) sends them."""

    ramp_s: float = 60.0
    gap: DistSpec = field(default_factory=lambda: DistSpec("exponential", 600.0))
    service: DistSpec = field(default_factory=lambda: DistSpec("fixed", 0.0))
    request_bytes: int = 0
    response_bytes: int = 0
    #: ``module:function`` of a traffic process driving every slot (sim.model.user_process), or None
    process: str | None = None
    #: its keyword arguments, as the config gave them, sorted by name
    params: tuple[tuple[str, Any], ...] = ()
    #: the folder its module is imported from first: the config file's folder ("" = none)
    process_path: str = ""
    #: the client closes a connection after this many answers on it (0: unlimited)
    requests_per_connection: int = 0


@dataclass(frozen=True)
class ClientSpec:
    """The client host, its sockets and its application timers (seconds; 0 = off)."""

    host: HostSpec
    socket: SocketSpec = SocketSpec()
    request_timeout_s: float = 0.0
    ping_interval_s: float = 0.0
    pool_idle_s: float = 0.0
    pool_lifetime_s: float = 0.0
    #: the client machines the slots are spread over, slot i on machine i % instances (0: one per slot)
    instances: int = 0
    #: when a slot reconnects after a death or a failed connect (docs/model.md)
    reconnect: ReconnectSpec = ReconnectSpec()


@dataclass(frozen=True)
class ClassSpec:
    """One traffic class: its name, its share of the fleet, its traffic and its client (the
    top-level client with the class's overrides)."""

    name: str
    share: float
    traffic: TrafficSpec
    client: ClientSpec


@dataclass(frozen=True)
class GrpcSpec:
    """gRPC server keepalive enforcement (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS ...)."""

    min_ping_interval_s: float = 300.0
    max_ping_strikes: int = 2
    permit_without_calls: bool = False


@dataclass(frozen=True)
class ServerSpec:
    """The upstream server: its host, sockets, HTTP keep-alive timeout (0 = off) and gRPC policy."""

    host: HostSpec
    socket: SocketSpec = SocketSpec()
    idle_timeout_s: float = 0.0
    grpc: GrpcSpec | None = None
    #: False: the application never closes a connection whose peer sent a FIN, which then stays in
    #: CLOSE_WAIT (kernel-lifecycle.md R51), its keepalive still running
    close_on_fin: bool = True


@dataclass(frozen=True)
class EnvoySpec:
    """Envoy: its host, the listener's (downstream) and the cluster's (upstream) sockets, and the
    timers of its HTTP connection manager and upstream pool (seconds; 0 = off)."""

    host: HostSpec
    listener_socket: SocketSpec = SocketSpec()
    upstream_socket: SocketSpec = SocketSpec()
    ds_idle_s: float = 3600.0
    us_idle_s: float = 3600.0
    tcp_proxy: bool = False
    retry_on_reset: bool = False
    #: the shorter of the route timeout and the stream idle timeout, and which one it is
    request_timeout_s: float = 0.0
    request_timeout_reason: str = ""
    #: the cluster's connect_timeout: an upstream connect not established by then is abandoned (0: off)
    connect_timeout_s: float = 10.0
    #: Envoy closes an upstream connection after this many answers on it (0: unlimited)
    max_requests_per_connection: int = 0
    #: worker threads, each with an upstream pool of its own (sim.model.pool)
    concurrency: int = 2
    #: Envoy instances (gateway pods), each its own host with ``concurrency`` workers: client slot
    #: ``i`` is served by instance ``i % replicas`` and by its pool ``i % (replicas * concurrency)``
    replicas: int = 1
    #: pool connections: "http1" (one request at a time) or "http2" (streams multiplexed)
    protocol: str = "http1"
    max_concurrent_streams: int = 2**31 - 1
    #: HTTP/2 connection keepalive (interval_s, timeout_s) on the pool's and on the listener's
    #: connections; (0, 0) = off
    upstream_h2_keepalive: tuple[float, float] = (0.0, 0.0)
    listener_h2_keepalive: tuple[float, float] = (0.0, 0.0)


@dataclass(frozen=True)
class FaultSpec:
    """An injected fault (docs/config.md#faults): from ``start_s`` until ``end_s`` (seconds of
    simulated time; ``math.inf`` = to the end of the run), on ``leg`` (``downstream``, ``upstream``
    or the name of one middlebox), it drops (``action`` ``drop``) or answers with an RST (``rst``)
    the segments of class ``packets`` (all, syn, fin, data, ack) going ``direction`` (to_server,
    to_client, both)."""

    start_s: float
    end_s: float
    leg: str
    direction: str = "both"
    packets: str = "all"
    action: str = "drop"


@dataclass(frozen=True)
class Shortcuts:
    """The model's work-saving shortcuts, each exact and each with its switch (docs/model.md).
    ``Shortcuts.none()`` is the reference engine: every ACK, keepalive expiry, loss-probe timer and
    request timeout a real event on one plain queue, and no chunking."""

    lazy_acks: bool = True
    virtual_keepalive_expiry: bool = True
    lazy_loss_probes: bool = True
    calendar_queue: bool = True
    shared_request_timeouts: bool = True
    chunking: bool = True

    @staticmethod
    def none() -> Shortcuts:
        return Shortcuts(False, False, False, False, False, False)


@dataclass(frozen=True)
class WorldSpec:
    """Everything one replication simulates: the topology (client → ``lb`` → Envoy → ``upstream_lb``
    → server), the traffic and the run's length. ``connections`` client slots."""

    name: str
    duration_s: float
    connections: int
    hop_s: float
    traffic: TrafficSpec
    client: ClientSpec
    server: ServerSpec
    lb: tuple[MiddleboxSpec, ...] = ()
    envoy: EnvoySpec | None = None
    upstream_lb: tuple[MiddleboxSpec, ...] = ()
    #: the host of a terminating LB's own sockets (its kernel's defaults)
    lb_host: HostSpec = HostSpec("lb")
    shortcuts: Shortcuts = Shortcuts()
    #: injected faults, in config order (their index names them: ``faults[0]``)
    faults: tuple[FaultSpec, ...] = ()
    #: a storm with a cause (``storm``), or None
    storm: StormSpec | None = None
    #: the traffic classes (sim.spec.classes), in config order, and their slots in this fleet
    #: (summing to ``connections``); empty: one class of ``traffic`` and ``client``, named "default"
    classes: tuple[ClassSpec, ...] = ()
    class_counts: tuple[int, ...] = ()

"""The scenario config (DESIGN §4) as pydantic models. Defaults live here (and in hostcfg.py) only.

Validation is strict: a value is never coerced from another type (``true`` is not 1, ``1`` is not
true, ``'2'`` is not 2, ``250.0`` is not the integer 250). Durations keep their two written forms,
a number of seconds or a string with a unit (sim.config.durations). The hard bounds on integers are
what the model and its outputs can represent; docs/config.md gives the reason for each.
"""

from __future__ import annotations

import keyword
import re
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from sim.config.classes import ClassClientCfg, TrafficClass, check_name, check_share, resolve_classes
from sim.config.envoy_pool import (
    MAX_CONCURRENT_STREAMS,
    Concurrency,
    ConcurrentStreams,
    Http2Keepalive,
    Replicas,
    UpstreamProtocol,
    check_http2_keepalive,
)
from sim.config.fields import Duration, KeyedError, Strict
from sim.config.fleet import FleetCfg, fleet_sets_connections
from sim.config.hostcfg import Keepalive, KeepaliveCfg, KernelCfg, PoolCfg, SynCnt, UserTimeout
from sim.config.ports import PortsCfg
from sim.config.storm import ReconnectCfg, StormCfg

#: names other modules import from here (the schema's public face)
__all__ = ["Duration", "KeepaliveCfg", "KernelCfg", "KeyedError", "Scenario", "Strict", "lb_list"]

#: Connection ids are ``slot * 1_000_000 + n`` (sim.facts.names.CONN_ID_STRIDE). With at most 1e9
#: slots every id is below 1e15 < 2**53, so it is exact in int64 columns and also as a float64
#: (pandas columns with NaN, JSON readers that parse numbers as doubles).
MAX_CONNECTIONS = 10**9
#: Each replication is a whole run of the fleet; a million is far beyond any useful confidence.
MAX_REPLICATIONS = 10**6
#: Any seed numpy's SeedSequence takes; points.parquet stores the replication seeds (64-bit) as
#: uint64 and a swept config seed as JSON text when int64 cannot hold it.
MAX_SEED = 2**128 - 1
#: C ``int`` limits: nf_conntrack_max and gRPC channel arguments are 32-bit ints.
MAX_INT32 = 2**31 - 1
#: Application bytes per message, for byte counts only: 1 GiB keeps per-minute sums far inside int64.
MAX_MESSAGE_BYTES = 2**30
#: Lognormal sigma: draws are median * exp(sigma * z); beyond 10 a 1-in-a-million draw is 10^20
#: times the median (and sigma = inf or 1e308 overflows to inf).
MAX_SIGMA = 10.0
#: One-way delay per hop (seconds). Above 10 s a path's RTT nears TCP_RTO_MAX (120 s), where every
#: segment would be retransmitted spuriously, which the model does not do.
MAX_ONE_WAY_DELAY_S = 10.0

def _two_bounds(v: Any) -> Any:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"uniform takes [low, high], got {v!r} (allowed: [low, high])")
    return tuple(v)


class Dist(Strict):
    """A distribution of durations (seconds): exactly one of the keys."""

    fixed: Optional[Duration] = None
    exponential: Optional[Duration] = None
    uniform: Optional[Annotated[tuple[Duration, Duration], BeforeValidator(_two_bounds)]] = None
    lognormal: Optional[LogNormal] = None

    @model_validator(mode="after")
    def _one(self) -> Dist:
        given = [k for k in ("fixed", "exponential", "uniform", "lognormal") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one distribution (allowed: fixed, exponential, uniform, lognormal)")
        if self.uniform is not None and self.uniform[0] > self.uniform[1]:
            raise ValueError("uniform bounds must be [low, high] with low <= high")
        if self.exponential is not None and self.exponential <= 0:
            raise ValueError("exponential mean must be > 0")
        return self

    def spec(self) -> tuple[str, float, float]:
        """(kind, a, b) for the model's Sampler."""
        if self.fixed is not None:
            return ("fixed", self.fixed, 0.0)
        if self.exponential is not None:
            return ("exponential", self.exponential, 0.0)
        if self.uniform is not None:
            return ("uniform", self.uniform[0], self.uniform[1])
        assert self.lognormal is not None  # the validator requires exactly one form
        return ("lognormal", self.lognormal.median, self.lognormal.sigma)


class LogNormal(Strict):
    """``median * exp(sigma * N(0, 1))`` seconds."""

    median: Duration
    sigma: float

    @field_validator("median")
    @classmethod
    def _median(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("median must be > 0: a lognormal of median 0 is always 0 (allowed: a duration > 0; "
                             "use {fixed: 0s} for no gap)")
        return v

    @field_validator("sigma")
    @classmethod
    def _sigma(cls, v: float) -> float:
        if v != v:  # NaN
            raise ValueError(f"sigma {v!r} is not a number (allowed: 0..{MAX_SIGMA:g})")
        if v < 0:
            raise ValueError(f"sigma {v!r} is too small (allowed: 0..{MAX_SIGMA:g})")
        if v > MAX_SIGMA:
            raise ValueError(f"sigma {v!r} is too large: draws are median x exp(sigma x z) and overflow "
                             f"(allowed: 0..{MAX_SIGMA:g})")
        return v


class LbCfg(Strict):
    """A middlebox: a profile plus overrides of any of its fields."""

    profile: str
    idle_timeout: Optional[Duration] = None
    refreshed_by: Optional[Literal["any_packet", "payload"]] = None
    on_expiry: Optional[Literal["silent", "rst_both", "fin_both"]] = None
    late_packet: Optional[Union[Literal["rst_to_sender", "drop", "new_flow"], LatePerDirection]] = None
    max_flows: Optional[int] = Field(default=None, ge=1, le=MAX_INT32)
    #: what a full flow table does with a new flow's SYN (docs/config.md); None: the profile's
    on_full: Optional[Literal["drop", "rst"]] = None
    #: its port budget, each field over the profile's (sim.config.ports, docs/config.md)
    ports: Optional[PortsCfg] = None


class LatePerDirection(Strict):
    from_client: Literal["rst_to_sender", "drop", "new_flow"]
    from_server: Literal["rst_to_sender", "drop", "new_flow"]


def _lb_in(v: Any) -> Any:
    if isinstance(v, str):
        return {"profile": v}
    if isinstance(v, list):
        return [{"profile": x} if isinstance(x, str) else x for x in v]
    if v is not None and not isinstance(v, dict):
        raise ValueError(f"{v!r} is not a middlebox (allowed: a profile name, {{profile: NAME, ...}}, a list of "
                         "those, or null)")
    return v


LbChain = Annotated[Optional[Union[LbCfg, list[LbCfg]]], BeforeValidator(_lb_in)]


class ClientCfg(Strict):
    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    syncnt: SynCnt = None  # TCP_SYNCNT; null = net.ipv4.tcp_syn_retries
    kernel: KernelCfg = KernelCfg()
    request_timeout: Duration = 0.0  # 0 = off; the client gives up on a request and its connection
    ping_interval: Duration = 0.0  # HTTP/2 (gRPC) PING every this long on each connection; 0 = off
    pool: PoolCfg = PoolCfg()
    #: the client machines the slots are spread over (slot i on machine i % instances); None: one per slot
    instances: Optional[int] = Field(default=None, ge=1, le=MAX_CONNECTIONS)
    reconnect: ReconnectCfg = ReconnectCfg()  # docs/config.md#clientreconnect


class SocketOption(Strict):
    """One EnvoyFilter / config_dump ``socket_options`` entry (numbers may be strings there)."""

    level: int
    name: int
    int_value: int
    state: Optional[Literal["STATE_PREBIND", "STATE_BOUND", "STATE_LISTENING"]] = None
    description: Optional[str] = None


class ListenerCfg(Strict):
    """Envoy's downstream (accepted) sockets, its HTTP connection manager and route timers."""

    socket_options: Optional[list[SocketOption]] = None
    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    #: http: idle_timeout = no active request for this long; tcp_proxy: no bytes for this long
    protocol: Literal["http", "tcp_proxy"] = "http"
    idle_timeout: Duration = 3600.0
    route_timeout: Duration = 15.0  # a request without a response for this long gets a 504; 0 = off
    stream_idle_timeout: Duration = 300.0  # a stream with no bytes for this long is reset (408); 0 = off
    http2_keepalive: Http2Keepalive = None  # Envoy PINGs the client: {interval, timeout} (envoy_pool.py)


class EnvoyUpstreamCfg(Strict):
    """Envoy's cluster side: DestinationRule tcpKeepalive, the pool idle timeout, retries."""

    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    syncnt: SynCnt = None  # TCP_SYNCNT; null = net.ipv4.tcp_syn_retries
    #: a connect not established by then is abandoned: 503 with reason connect_timeout; 0 = off
    connect_timeout: Duration = 10.0
    #: Envoy closes an upstream connection after this many answers on it (null: unlimited)
    max_requests_per_connection: Optional[int] = Field(default=None, ge=1, le=MAX_INT32)
    idle_timeout: Duration = 3600.0
    retry_on_reset: bool = False  # retry a request once on a new connection when its upstream resets
    #: pool connections carry one request at a time (http1) or multiplex streams (http2)
    protocol: UpstreamProtocol = "http1"
    max_concurrent_streams: ConcurrentStreams = MAX_CONCURRENT_STREAMS
    http2_keepalive: Http2Keepalive = None  # Envoy PINGs its pool connections: {interval, timeout}

    @model_validator(mode="after")
    def _h2_keepalive_needs_h2(self) -> EnvoyUpstreamCfg:
        check_http2_keepalive(self.protocol, self.http2_keepalive)
        return self


#: The product an ``envoy`` block stands for, and the defaults of it that differ from the field
#: defaults above (which are Envoy's own). Sources, file and line: docs/config.md#envoyflavor.
#: Istio sets every route's timeout to 0 (route.go setTimeout, Notimeout) and the HTTP connection
#: manager's stream_idle_timeout to 0 (listener_builder.go); it leaves the HTTP and upstream idle
#: timeouts at Envoy's 1 h.
FLAVOR_DEFAULTS: dict[str, dict[tuple[str, str], float]] = {
    "envoy": {},
    "istio": {("listener", "route_timeout"): 0.0, ("listener", "stream_idle_timeout"): 0.0},
}


class EnvoyCfg(Strict):
    """A terminating proxy. ``flavor`` picks the product's defaults; a value written in the config wins."""

    flavor: Literal["envoy", "istio"] = "envoy"
    listener: ListenerCfg = ListenerCfg()
    upstream: EnvoyUpstreamCfg = EnvoyUpstreamCfg()
    kernel: KernelCfg = KernelCfg()
    concurrency: Concurrency = 2  # worker threads, each with its own upstream pool
    #: Envoy instances (gateway pods) behind the LB, each its own host with ``concurrency`` workers
    replicas: Replicas = 1

    @model_validator(mode="before")
    @classmethod
    def _flavor_defaults(cls, data: Any) -> Any:
        """Fill in the flavor's defaults for keys the config does not write."""
        if not isinstance(data, dict):
            return data
        flavor = data.get("flavor", "envoy")
        defaults = FLAVOR_DEFAULTS.get(flavor) if isinstance(flavor, str) else None
        if not defaults:
            return data
        out = dict(data)
        for (section, key), value in defaults.items():
            block = out.get(section, {})
            if isinstance(block, dict) and key not in block:
                out[section] = {**block, key: value}
        return out


class GrpcCfg(Strict):
    """gRPC server keepalive enforcement (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS ...)."""

    min_ping_interval: Duration = 300.0
    max_ping_strikes: int = Field(default=2, ge=0, le=MAX_INT32)
    permit_without_calls: bool = False  # else pings with no call in progress may come every 2 h at most


class UpstreamCfg(Strict):
    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    lb: LbChain = None
    kernel: KernelCfg = KernelCfg()
    idle_timeout: Duration = 0.0  # HTTP keep-alive timeout: the server closes an idle connection; 0 = off
    grpc: Optional[GrpcCfg] = None
    #: false: the server application never closes a connection its peer closed (CLOSE_WAIT, R51)
    close_on_fin: bool = True


#: ``traffic.process``: a module path (dotted identifiers), a colon, a function name
_PROCESS = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)


class TrafficCfg(Strict):
    ramp: Duration = 60.0
    request_gap: Dist = Dist(exponential=600.0)
    service_time: Dist = Dist(fixed=0.0)
    request_bytes: int = Field(default=0, ge=0, le=MAX_MESSAGE_BYTES)
    response_bytes: int = Field(default=0, ge=0, le=MAX_MESSAGE_BYTES)
    #: a user-written SimPy process that sends each slot's requests (docs/config.md#traffic-process)
    process: Optional[str] = None
    #: its keyword arguments, as YAML gives them
    params: dict[str, Any] = Field(default_factory=dict)
    #: the client closes a connection after this many answers; the next request opens another
    requests_per_connection: Optional[int] = Field(default=None, ge=1, le=MAX_INT32)

    @field_validator("process")
    @classmethod
    def _process(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (not _PROCESS.fullmatch(v) or any(keyword.iskeyword(p) for p in re.split("[.:]", v))):
            raise ValueError(f"{v!r} is not module:function (allowed: a module of the config's folder or of "
                             "sys.path and a function in it, e.g. behaviours:nightly_batch)")
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key in v:
            if not key.isidentifier() or keyword.iskeyword(key):
                raise KeyedError(key, f"{key!r} cannot be a keyword argument (allowed: Python identifiers)")
        return v

    @model_validator(mode="after")
    def _params_need_a_process(self) -> TrafficCfg:
        if self.params and self.process is None:
            raise ValueError("params without a process (allowed: params together with traffic.process)")
        return self


class TrafficClassCfg(TrafficCfg):
    """One traffic class (sim.config.classes): a name, a share of the fleet, every traffic key and the
    class's own client settings."""

    name: Annotated[str, AfterValidator(check_name)]
    share: Annotated[float, BeforeValidator(check_share)]
    client: ClassClientCfg = ClassClientCfg()


def _traffic_in(v: Any) -> Any:
    if v is not None and not isinstance(v, (dict, list)):
        raise ValueError(f"{v!r} is not traffic (allowed: a traffic mapping, or a list of classes "
                         "{name, share, ...}")
    for i, c in enumerate(v if isinstance(v, list) else ()):
        if not isinstance(c, dict):
            raise KeyedError(i, f"{c!r} should be a mapping (allowed: a class {{name, share, ...traffic keys, "
                                "client})")
    return v


class NetworkCfg(Strict):
    one_way_delay: Duration = 0.001

    @field_validator("one_way_delay")
    @classmethod
    def _positive(cls, v: float) -> float:
        if not 0 < v <= MAX_ONE_WAY_DELAY_S:
            what = "must be > 0" if v <= 0 else f"{v:g} s is longer than {MAX_ONE_WAY_DELAY_S:g} s"
            raise ValueError(f"one_way_delay {what} (allowed: 1µs..{MAX_ONE_WAY_DELAY_S:g} s)")
        return v


class FaultCfg(Strict):
    """An injected fault (docs/config.md#faults): from ``at`` for ``for`` (to the end of the run
    when not given), on ``leg``, the segments of class ``packets`` going ``direction`` are dropped
    or answered with an RST."""

    model_config = ConfigDict(serialize_by_alias=True)  # ``for`` is a Python keyword: field ``for_``
    at: Duration = 0.0
    for_: Optional[Duration] = Field(default=None, alias="for")
    leg: str
    direction: Literal["to_server", "to_client", "both"] = "both"
    packets: Literal["all", "syn", "fin", "data", "ack"] = "all"
    action: Literal["drop", "rst"] = "drop"

    @field_validator("for_")
    @classmethod
    def _for(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and v <= 0:
            raise ValueError("a fault that lasts 0 s does nothing (allowed: a duration > 0, or no `for` for the "
                             "rest of the run)")
        return v


def _faults_in(v: Any) -> Any:
    return [] if v is None else v


class Scenario(Strict):
    """A whole scenario; ``sweep`` is validated separately (sim.config.load)."""

    name: str = "scenario"
    duration: Duration = 7200.0
    replications: int = Field(default=1, ge=1, le=MAX_REPLICATIONS)
    seed: int = Field(default=1, ge=0, le=MAX_SEED)
    connections: int = Field(default=1, ge=1, le=MAX_CONNECTIONS)
    #: one mapping (one class, ``default``), or a list of classes (sim.config.classes)
    traffic: Annotated[Union[TrafficCfg, list[TrafficClassCfg]], BeforeValidator(_traffic_in)] = TrafficCfg()
    network: NetworkCfg = NetworkCfg()
    kernel: KernelCfg = KernelCfg(hz=250, timers="wheel")
    client: ClientCfg = ClientCfg()
    lb: LbChain = None
    envoy: Optional[EnvoyCfg] = None
    upstream: UpstreamCfg = UpstreamCfg()
    #: injected faults, in the order written (null = none)
    faults: Annotated[list[FaultCfg], BeforeValidator(_faults_in)] = Field(default_factory=list)
    #: the fleet's size and the sample of it to simulate (sim.config.fleet); null: ``connections``, whole
    fleet: Optional[FleetCfg] = None
    storm: Optional[StormCfg] = None  # docs/config.md#storm
    sweep: dict[str, Any] = Field(default_factory=dict)
    #: the folder of the config file it came from (the working directory for a config from stdin or
    #: code): a traffic process's module is imported from there. Set when it is validated
    #: (sim.config.validate), not a key.
    _config_dir: str = PrivateAttr(default="")

    @property
    def config_dir(self) -> str:
        """The config file's folder, absolute ("" when unknown: the working directory then)."""
        return self._config_dir

    def at_folder(self, folder: str) -> Scenario:
        """This scenario, its ``config_dir`` set to ``folder``."""
        self._config_dir = folder
        return self

    def classes(self) -> list[TrafficClass]:
        """The traffic classes, each with its whole client (one, ``default``, for a single mapping)."""
        return resolve_classes(self.traffic, self.client)

    @model_validator(mode="before")
    @classmethod
    def _fleet(cls, data: Any) -> Any:
        return fleet_sets_connections(data)

    @field_validator("duration")
    @classmethod
    def _dur(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("duration must be > 0")
        return v


def lb_list(chain: Any) -> list[LbCfg]:
    """``lb`` as a list in path order (None = no middlebox)."""
    if chain is None:
        return []
    return list(chain) if isinstance(chain, list) else [chain]


Dist.model_rebuild()
LbCfg.model_rebuild()

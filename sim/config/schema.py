"""The scenario config (DESIGN §4) as pydantic models. Defaults live here and only here."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from sim.config.durations import parse_duration, whole_seconds
from sim.model.kernel import DEFAULT_SYSCTL, MAX_TCP_KEEPCNT, MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL

Duration = Annotated[float, BeforeValidator(parse_duration)]

#: Sysctls the model reads, with the ranges a 6.18 kernel accepts (kernel-keepalive.md §1.2).
SYSCTL_RANGES = {
    "net.ipv4.tcp_keepalive_time": (1, 8589934),
    "net.ipv4.tcp_keepalive_intvl": (1, 8589934),
    "net.ipv4.tcp_keepalive_probes": (0, 255),
    "net.ipv4.tcp_retries1": (0, 255),
    "net.ipv4.tcp_retries2": (0, 255),
}
USER_TIMEOUT_MAX_MS = 2**31 - 1


class Strict(BaseModel):
    """Unknown keys are errors, never ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _two_bounds(v: Any) -> Any:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ValueError(f"uniform takes [low, high], got {v!r} (allowed: [low, high])")
    return v


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
    median: Duration
    sigma: float = Field(ge=0)


def _keepalive_in(value: Any) -> Any:
    """``off``/``on``/mapping; DestinationRule names (time, probes) accepted as aliases."""
    if isinstance(value, bool):
        return {"enabled": value}
    if value is None:
        return {"enabled": False}
    if isinstance(value, str) and value.lower() in ("off", "on", "true", "false"):
        return {"enabled": value.lower() in ("on", "true")}
    if isinstance(value, dict):
        out = dict(value)
        for alias, key in (("time", "idle"), ("probes", "count")):
            if alias in out:
                if key in out:
                    raise ValueError(f"give {key} or its DestinationRule name {alias}, not both")
                out[key] = out.pop(alias)
        out.setdefault("enabled", True)
        return out
    raise ValueError(f"{value!r} is not a keepalive setting (allowed: off, on, or {{idle, interval, count}})")


class KeepaliveCfg(Strict):
    """SO_KEEPALIVE plus TCP_KEEPIDLE/INTVL/CNT; a missing value falls back to the sysctl (R1)."""

    enabled: bool = False
    idle: Optional[int] = None
    interval: Optional[int] = None
    count: Optional[int] = None

    @field_validator("idle", mode="before")
    @classmethod
    def _idle(cls, v: Any) -> Any:
        return None if v is None else whole_seconds(v, "TCP_KEEPIDLE", 1, MAX_TCP_KEEPIDLE)

    @field_validator("interval", mode="before")
    @classmethod
    def _intvl(cls, v: Any) -> Any:
        return None if v is None else whole_seconds(v, "TCP_KEEPINTVL", 1, MAX_TCP_KEEPINTVL)

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"TCP_KEEPCNT takes an integer, got {v!r} (allowed: 1..{MAX_TCP_KEEPCNT})")
        if not 1 <= v <= MAX_TCP_KEEPCNT:
            raise ValueError(f"TCP_KEEPCNT {v} is rejected by the kernel with EINVAL (allowed: 1..{MAX_TCP_KEEPCNT})")
        return v

    def label(self) -> str:
        if not self.enabled:
            return "off"
        parts = [f"{k}={v}" for k, v in (("idle", self.idle), ("interval", self.interval), ("count", self.count))
                 if v is not None]
        return "on(" + ", ".join(parts) + ")" if parts else "on(sysctl)"


Keepalive = Annotated[KeepaliveCfg, BeforeValidator(_keepalive_in)]


def _user_timeout(v: Any) -> float:
    seconds = parse_duration(v)
    if seconds * 1000 > USER_TIMEOUT_MAX_MS:
        raise ValueError(f"TCP_USER_TIMEOUT {seconds} s is too large (allowed: 0..{USER_TIMEOUT_MAX_MS} ms)")
    return seconds


UserTimeout = Annotated[float, BeforeValidator(_user_timeout)]


class KernelCfg(Strict):
    """Kernel defaults for every host; a host's ``kernel`` block overrides any of it."""

    hz: Optional[Literal[100, 250, 300, 1000]] = None
    timers: Optional[Literal["wheel", "exact"]] = None
    sysctl: dict[str, int] = Field(default_factory=dict)

    @field_validator("sysctl", mode="before")
    @classmethod
    def _sysctl(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("sysctl is a mapping of kernel sysctl names to integers")
        for key, val in v.items():
            if key not in SYSCTL_RANGES:
                import difflib

                close = difflib.get_close_matches(str(key), list(SYSCTL_RANGES), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"unknown sysctl {key!r}{hint} (allowed: {', '.join(SYSCTL_RANGES)})")
            lo, hi = SYSCTL_RANGES[key]
            if isinstance(val, bool) or not isinstance(val, int) or not lo <= val <= hi:
                raise ValueError(f"{key} = {val!r} is rejected by the kernel (allowed: integers {lo}..{hi})")
        return v

    def merged(self, over: KernelCfg) -> KernelCfg:
        """This block with a host's overrides on top (sysctls merged by name)."""
        return KernelCfg(hz=over.hz or self.hz, timers=over.timers or self.timers,
                         sysctl={**self.sysctl, **over.sysctl})

    def resolved(self) -> tuple[int, bool, dict[str, int]]:
        """(hz, exact, full sysctl dict) with the kernel's defaults filled in (R2)."""
        return (self.hz or 250, (self.timers or "wheel") == "exact", {**DEFAULT_SYSCTL, **self.sysctl})


class LbCfg(Strict):
    """A middlebox: a profile plus overrides of any of its fields."""

    profile: str
    idle_timeout: Optional[Duration] = None
    refreshed_by: Optional[Literal["any_packet", "payload"]] = None
    on_expiry: Optional[Literal["silent", "rst_both", "fin_both"]] = None
    late_packet: Optional[Union[Literal["rst_to_sender", "drop", "new_flow"], LatePerDirection]] = None
    max_flows: Optional[int] = Field(default=None, ge=1)


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


class PoolCfg(Strict):
    """The client's connection pool: close an idle connection, or any connection after a lifetime."""

    idle_timeout: Duration = 0.0  # 0 = off; the next request then opens a new connection
    max_lifetime: Duration = 0.0  # 0 = off; closed after its current request, replaced at once


class ClientCfg(Strict):
    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    kernel: KernelCfg = KernelCfg()
    request_timeout: Duration = 0.0  # 0 = off; the client gives up on a request and its connection
    ping_interval: Duration = 0.0  # HTTP/2 (gRPC) PING every this long on each connection; 0 = off
    pool: PoolCfg = PoolCfg()


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


class EnvoyUpstreamCfg(Strict):
    """Envoy's cluster side: DestinationRule tcpKeepalive, the pool idle timeout, retries."""

    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    idle_timeout: Duration = 3600.0
    retry_on_reset: bool = False  # retry a request once on a new connection when its upstream resets


class EnvoyCfg(Strict):
    listener: ListenerCfg = ListenerCfg()
    upstream: EnvoyUpstreamCfg = EnvoyUpstreamCfg()
    kernel: KernelCfg = KernelCfg()


class GrpcCfg(Strict):
    """gRPC server keepalive enforcement (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS ...)."""

    min_ping_interval: Duration = 300.0
    max_ping_strikes: int = Field(default=2, ge=0)
    permit_without_calls: bool = False  # else pings with no call in progress may come every 2 h at most


class UpstreamCfg(Strict):
    keepalive: Keepalive = KeepaliveCfg()
    user_timeout: UserTimeout = 0.0
    lb: LbChain = None
    kernel: KernelCfg = KernelCfg()
    idle_timeout: Duration = 0.0  # HTTP keep-alive timeout: the server closes an idle connection; 0 = off
    grpc: Optional[GrpcCfg] = None


class TrafficCfg(Strict):
    ramp: Duration = 60.0
    request_gap: Dist = Dist(exponential=600.0)
    service_time: Dist = Dist(fixed=0.0)
    request_bytes: int = Field(default=0, ge=0)
    response_bytes: int = Field(default=0, ge=0)


class NetworkCfg(Strict):
    one_way_delay: Duration = 0.001

    @field_validator("one_way_delay")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("one_way_delay must be > 0 (allowed: a duration such as 1ms)")
        return v


class Scenario(Strict):
    """A whole scenario; ``sweep`` is validated separately (sim.config.load)."""

    name: str = "scenario"
    duration: Duration = 7200.0
    replications: int = Field(default=1, ge=1, strict=True)
    seed: int = Field(default=1, ge=0, le=2**128 - 1, strict=True)  # numpy SeedSequence takes any size
    connections: int = Field(default=1, ge=1, strict=True)
    traffic: TrafficCfg = TrafficCfg()
    network: NetworkCfg = NetworkCfg()
    kernel: KernelCfg = KernelCfg(hz=250, timers="wheel")
    client: ClientCfg = ClientCfg()
    lb: LbChain = None
    envoy: Optional[EnvoyCfg] = None
    upstream: UpstreamCfg = UpstreamCfg()
    sweep: dict[str, Any] = Field(default_factory=dict)

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

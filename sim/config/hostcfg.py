"""Per-host kernel settings in the config: keepalive (SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT),
TCP_USER_TIMEOUT and the kernel block (hz, timers, sysctls)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BeforeValidator, Field, field_validator

from sim.config.durations import config_duration, short_repr, whole_seconds
from sim.config.fields import Duration, KeyedError, Strict, integer_among
from sim.facts.kernel import (
    DEFAULT_SYSCTL,
    MAX_TCP_KEEPCNT,
    MAX_TCP_KEEPIDLE,
    MAX_TCP_KEEPINTVL,
    MAX_TCP_SYNCNT,
    SYSCTL_RANGES,
    USER_TIMEOUT_MAX_MS,
)

#: The words a keepalive setting accepts besides true/false/null (YAML 1.2 reads them as strings).
KEEPALIVE_WORDS = {"off": False, "on": True}


def _keepalive_in(value: Any) -> Any:
    """``off``/``on``/``true``/``false``/``null``/mapping; DestinationRule names (time, probes) are aliases."""
    if isinstance(value, bool):
        return {"enabled": value}
    if value is None:
        return {"enabled": False}
    if isinstance(value, str) and value.lower() in KEEPALIVE_WORDS:
        return {"enabled": KEEPALIVE_WORDS[value.lower()]}
    if isinstance(value, dict):
        out = dict(value)
        for alias, key in (("time", "idle"), ("probes", "count")):
            if alias in out:
                if key in out:
                    raise ValueError(f"give {key} or its DestinationRule name {alias}, not both")
                out[key] = out.pop(alias)
        out.setdefault("enabled", True)
        return out
    raise ValueError(f"{short_repr(value)} is not a keepalive setting (allowed: off, on, true, false, or "
                     "{idle, interval, count})")


class KeepaliveCfg(Strict):
    """SO_KEEPALIVE plus TCP_KEEPIDLE/INTVL/CNT; a missing value falls back to the sysctl (R1)."""

    enabled: bool = False
    idle: Optional[int] = None
    interval: Optional[int] = None
    count: Optional[int] = None

    @field_validator("idle", mode="before")
    @classmethod
    def _idle(cls, v: Any) -> Any:
        return None if v is None else whole_seconds(v, "TCP_KEEPIDLE", 1, MAX_TCP_KEEPIDLE, unit_required=True)

    @field_validator("interval", mode="before")
    @classmethod
    def _intvl(cls, v: Any) -> Any:
        return None if v is None else whole_seconds(v, "TCP_KEEPINTVL", 1, MAX_TCP_KEEPINTVL, unit_required=True)

    @field_validator("count", mode="before")
    @classmethod
    def _count(cls, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"TCP_KEEPCNT takes an integer, got {short_repr(v)} (allowed: 1..{MAX_TCP_KEEPCNT})")
        if not 1 <= v <= MAX_TCP_KEEPCNT:
            raise ValueError(f"TCP_KEEPCNT {short_repr(v)} is rejected by the kernel with EINVAL "
                             f"(allowed: 1..{MAX_TCP_KEEPCNT})")
        return v

    def label(self) -> str:
        if not self.enabled:
            return "off"
        parts = [f"{k}={v}" for k, v in (("idle", self.idle), ("interval", self.interval), ("count", self.count))
                 if v is not None]
        return "on(" + ", ".join(parts) + ")" if parts else "on(sysctl)"


Keepalive = Annotated[KeepaliveCfg, BeforeValidator(_keepalive_in)]


def _user_timeout(v: Any) -> float:
    seconds = config_duration(v)
    if seconds * 1000 > USER_TIMEOUT_MAX_MS:
        raise ValueError(f"TCP_USER_TIMEOUT {seconds} s is too large (allowed: 0..{USER_TIMEOUT_MAX_MS} ms)")
    return seconds


UserTimeout = Annotated[float, BeforeValidator(_user_timeout)]


def _syncnt(v: Any) -> Any:
    """TCP_SYNCNT (kernel-lifecycle.md R43): null = the netns tcp_syn_retries."""
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"TCP_SYNCNT takes an integer, got {short_repr(v)} (allowed: 1..{MAX_TCP_SYNCNT})")
    if not 1 <= v <= MAX_TCP_SYNCNT:
        raise ValueError(f"TCP_SYNCNT {short_repr(v)} is rejected by the kernel with EINVAL "
                         f"(allowed: 1..{MAX_TCP_SYNCNT})")
    return v


#: TCP_SYNCNT, or None for the sysctl net.ipv4.tcp_syn_retries
SynCnt = Annotated[Optional[int], BeforeValidator(_syncnt)]


class KernelCfg(Strict):
    """Kernel defaults for every host; a host's ``kernel`` block overrides any of it."""

    hz: Annotated[Optional[Literal[100, 250, 300, 1000]], BeforeValidator(integer_among(100, 250, 300, 1000))] = None
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
                raise KeyedError(key, f"unknown sysctl {key!r}{hint} (allowed: {', '.join(SYSCTL_RANGES)})")
            lo, hi = SYSCTL_RANGES[key]
            if isinstance(val, bool) or not isinstance(val, int) or not lo <= val <= hi:
                raise KeyedError(key, f"{key} = {short_repr(val)} is rejected by the kernel "
                                      f"(allowed: integers {lo}..{hi})")
        return v

    def merged(self, over: KernelCfg) -> KernelCfg:
        """This block with a host's overrides on top (sysctls merged by name)."""
        return KernelCfg(hz=over.hz or self.hz, timers=over.timers or self.timers,
                         sysctl={**self.sysctl, **over.sysctl})

    def resolved(self) -> tuple[int, bool, dict[str, int]]:
        """(hz, exact, full sysctl dict) with the kernel's defaults filled in (R2)."""
        return (self.hz or 250, (self.timers or "wheel") == "exact", {**DEFAULT_SYSCTL, **self.sysctl})


class PoolCfg(Strict):
    """The client's connection pool: close an idle connection, or any connection after a lifetime."""

    idle_timeout: Duration = 0.0  # 0 = off; the next request then opens a new connection
    max_lifetime: Duration = 0.0  # 0 = off; closed after its current request, replaced at once

"""The world spec of a storm and of the client's reconnect policy (docs/model.md, "Storms and
reconnect policies"). Times in seconds."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StormSpec:
    """``rollout``: Envoy closes each downstream connection at ``start_s`` + U(0, ``window_s``)
    (a per-slot draw), with GOAWAY when ``goaway`` (an HTTP/2 client) and FIN otherwise.
    ``deregister`` and ``drop_all``: at ``start_s`` (a deregistration's delay included) the device
    ``device`` (an index into the leg's devices) of leg ``leg`` forgets every flow it holds; the next
    packet of each meets the device's late-packet policy."""

    kind: str
    start_s: float
    window_s: float = 0.0
    goaway: bool = False
    leg: str = "downstream"
    device: int = 0


@dataclass(frozen=True)
class ReconnectSpec:
    """``policy``: next_request | immediate | backoff; the backoff's ``base_s``, ``cap_s`` and
    ``jitter`` (none | full | equal | decorrelated)."""

    policy: str = "next_request"
    base_s: float = 0.0
    cap_s: float = 0.0
    jitter: str = "none"

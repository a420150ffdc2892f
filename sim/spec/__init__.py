"""The world spec: what the config resolves a scenario into, and all the model builds a world from.

Plain, typed, immutable data (frozen dataclasses), every default filled in and every unit
explicit; ``sim.config.resolve.world_spec`` makes it, ``sim.model`` reads it and never the config.
"""

from sim.spec.storm import ReconnectSpec, StormSpec
from sim.spec.world import (
    ClassSpec,
    ClientSpec,
    DistSpec,
    EnvoySpec,
    FaultSpec,
    GrpcSpec,
    HostSpec,
    MiddleboxSpec,
    NlcuSpec,
    ServerSpec,
    Shortcuts,
    SocketSpec,
    TrafficSpec,
    WorldSpec,
)

__all__ = ["ClassSpec", "ClientSpec", "DistSpec", "EnvoySpec", "FaultSpec", "GrpcSpec", "HostSpec",
           "MiddleboxSpec", "NlcuSpec", "ReconnectSpec", "ServerSpec", "Shortcuts", "SocketSpec", "StormSpec",
           "TrafficSpec", "WorldSpec"]

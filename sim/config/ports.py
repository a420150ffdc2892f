"""Port budgets (docs/model.md, "Port budgets"): the config's ``lb.ports`` block, a profile's
``ports`` block, and how the two resolve into one budget for a device.

A NAT device gives each flow a source port (an SNAT port) from a budget: one budget shared by every
flow to a destination (``per: destination``; the model's fleet has one destination), or one budget
per client machine (``per: client_instance``; ``client.instances`` machines). A port is held until
the device forgets the flow; after a close, ``reuse_s`` longer.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sim.config.durations import parse_duration
from sim.config.fields import Duration, Strict

#: The sizes of the keys, as the model and its outputs can hold them (a C int).
MAX_PORTS = 2**31 - 1
PortsPer = Literal["destination", "client_instance"]


class PortsCfg(Strict):
    """``lb.ports``: each field overrides the profile's own (None: the profile's)."""

    limit: Optional[int] = Field(default=None, ge=1, le=MAX_PORTS)
    per: Optional[PortsPer] = None
    reuse_s: Optional[Duration] = None

    @field_validator("reuse_s")
    @classmethod
    def _reuse(cls, v: Optional[float]) -> Optional[float]:
        if v is not None and not v >= 0:
            raise ValueError(f"reuse_s {v!r} must be >= 0 (allowed: a duration >= 0)")
        return v


class ProfilePorts(BaseModel):
    """A profile's budget (profiles/README.md). ``limit`` a fixed number of ports, or
    ``limit_by_pool`` ``[[up_to_instances, ports], ...]`` (ascending): the ports of each client
    instance by the pool's size, a size beyond the last row being unpublished; neither: the limit is
    not published and the config must give it. ``reuse``: the hold after a close (null: 0 s)."""

    model_config = ConfigDict(extra="forbid")
    limit: Optional[int] = None
    limit_by_pool: Optional[list[tuple[int, int]]] = None
    per: PortsPer
    reuse: Optional[Union[int, float, str]] = None


class MissingLimit(ValueError):
    """A profile does not publish the port limit that this config needs: ``lb.ports.limit`` is required.
    ``problem`` and ``allowed``: the two parts of its error line."""

    def __init__(self, problem: str, allowed: str) -> None:
        super().__init__(f"{problem} (allowed: {allowed})")
        self.problem = problem
        self.allowed = allowed


def resolve_ports(profile: str, prof: Optional[ProfilePorts], cfg: Optional[PortsCfg],
                  pool: int) -> tuple[Optional[int], str, float]:
    """``(limit, per, reuse_s)`` of a device: the config's fields over the profile's, one by one.
    ``pool``: the client instances behind the device (a table's row). ``limit`` None: no budget.
    Raises MissingLimit when the profile has a budget whose figure is not published."""
    per: str = (cfg.per if cfg and cfg.per else None) or (prof.per if prof else "destination")
    reuse_s = cfg.reuse_s if cfg and cfg.reuse_s is not None else (
        parse_duration(prof.reuse) if prof and prof.reuse is not None else 0.0)
    if cfg is not None and cfg.limit is not None:
        return cfg.limit, per, reuse_s
    if prof is None:
        return None, per, reuse_s
    if prof.limit is not None:
        return prof.limit, per, reuse_s
    for up_to, ports in prof.limit_by_pool or ():
        if pool <= up_to:
            return ports, per, reuse_s
    last = f" beyond {prof.limit_by_pool[-1][0]} instances" if prof.limit_by_pool else ""
    raise MissingLimit(f"required: {profile} publishes no port limit{last} (a pool of {pool})",
                       "set lb.ports.limit" + (" or client.instances within the table" if last else ""))

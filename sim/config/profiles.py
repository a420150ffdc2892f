"""Middlebox profiles: data files in ``profiles/``, one per device, each with its sources."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict

from sim.config.durations import parse_duration
from sim.config.ports import ProfilePorts, resolve_ports
from sim.config.schema import LatePerDirection, LbCfg
from sim.spec import MiddleboxSpec, NlcuSpec

PROFILE_DIR = Path(__file__).with_name("profiles")
Late = Literal["rst_to_sender", "drop", "new_flow"]


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    claim: str


class Nlcu(BaseModel):
    """AWS load-balancer capacity-unit dimensions and prices (an estimate, see ``source``)."""

    model_config = ConfigDict(extra="forbid")
    new_flows_per_s: float
    active_flows: float
    bytes_per_hour: float
    price_per_nlcu_hour_usd: float
    price_per_hour_usd: float
    source: str
    note: str = ""


class Capacity(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nlcu: Optional[Nlcu] = None


class Profile(BaseModel):
    """One device's idle-flow behaviour (schema documented in profiles/README.md)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    description: str
    kind: Literal["passthrough", "terminating"]
    idle_timeout: Union[int, float, str]
    idle_timeout_range: Optional[list[Union[int, float, str]]] = None
    refreshed_by: Literal["any_packet", "payload"]
    on_expiry: Literal["silent", "rst_both", "fin_both"]
    late_packet: Union[Late, LatePerDirection]
    max_flows: Optional[int] = None
    #: what a full flow table does with a new flow's SYN: drop it (the client retries) or RST it
    on_full: Literal["drop", "rst"]
    #: its source-port budget (a NAT), or null (sim.config.ports)
    ports: Optional[ProfilePorts] = None
    confidence: Literal["doc", "3rd", "inferred"]
    sources: list[Source]
    notes: str = ""
    capacity: Optional[Capacity] = None
    #: terminating LBs that answer a keepalive with their own on both legs (NLB TLS: 20 s)
    keepalive_generation: Optional[Union[int, float, str]] = None
    #: target-group deregistration delay: a ``deregister`` storm ends the flows this long after ``at``
    deregistration_delay: Optional[Union[int, float, str]] = None

    @property
    def idle_timeout_s(self) -> float:
        return parse_duration(self.idle_timeout)

    @property
    def range_s(self) -> Optional[tuple[float, float]]:
        if not self.idle_timeout_range:
            return None
        lo, hi = self.idle_timeout_range
        return parse_duration(lo), parse_duration(hi)


@cache
def all_profiles() -> dict[str, Profile]:
    """Every profile shipped with the package, by name."""
    out = {}
    for path in sorted(PROFILE_DIR.glob("*.yaml")):
        prof = Profile.model_validate(yaml.safe_load(path.read_text()))
        out[prof.name] = prof
    return out


def middlebox_spec(cfg: LbCfg, pool: int = 1) -> MiddleboxSpec:
    """A profile with the config's overrides applied (its NLCU figures included, when it has them).
    ``pool``: the client instances behind the device, which may size its port budget (a
    ``limit_by_pool`` table). Raises sim.config.ports.MissingLimit when the budget's limit is not
    published and the config gives none (validation reports it with its line first)."""
    prof = all_profiles()[cfg.profile]
    ports_limit, ports_per, reuse_s = resolve_ports(cfg.profile, prof.ports, cfg.ports, pool)
    nlcu = prof.capacity.nlcu if prof.capacity else None
    late = cfg.late_packet if cfg.late_packet is not None else prof.late_packet
    if isinstance(late, str):
        late_c = late_s = late
    else:
        late_c, late_s = late.from_client, late.from_server
    return MiddleboxSpec(
        name=cfg.profile,
        terminating=prof.kind == "terminating",
        keepalive_every_s=parse_duration(prof.keepalive_generation) if prof.keepalive_generation else 0.0,
        idle_timeout_s=cfg.idle_timeout if cfg.idle_timeout is not None else prof.idle_timeout_s,
        refreshed_by=cfg.refreshed_by or prof.refreshed_by,
        on_expiry=cfg.on_expiry or prof.on_expiry,
        late_from_client=late_c,
        late_from_server=late_s,
        max_flows=cfg.max_flows if cfg.max_flows is not None else prof.max_flows,
        on_full=cfg.on_full or prof.on_full,
        ports_limit=ports_limit, ports_per=ports_per, ports_reuse_s=reuse_s,
        nlcu=NlcuSpec(nlcu.new_flows_per_s, nlcu.active_flows, nlcu.bytes_per_hour, nlcu.price_per_nlcu_hour_usd,
                      nlcu.price_per_hour_usd) if nlcu else None,
    )

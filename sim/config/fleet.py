"""``fleet: {connections, sample}`` (DESIGN §6): the fleet's size, and a seeded sample of its slots to
simulate instead of all of them (docs/config.md#fleet)."""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import Field, field_validator

from sim.config.fields import Strict

#: the same bound as the top-level ``connections`` (schema.MAX_CONNECTIONS: ids stay exact)
MAX_FLEET = 10**9


class FleetCfg(Strict):
    """``connections``: the fleet's client slots (it replaces the top-level key; without it, the
    top-level ``connections`` is the fleet). ``sample``: how many of
    them to simulate, a count (an integer ≥ 1) or a fraction (a float in (0, 1)); null: all."""

    connections: int = Field(ge=1, le=MAX_FLEET)
    sample: Optional[Union[int, float]] = None

    @field_validator("sample", mode="before")
    @classmethod
    def _sample(cls, v: Optional[Union[int, float]]) -> Optional[Union[int, float]]:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{v!r} (allowed: a count, an integer >= 1, or a fraction, a float in (0, 1))")
        if isinstance(v, int) and v < 1:
            raise ValueError(f"{v} slots (allowed: a count >= 1, or a fraction in (0, 1))")
        if isinstance(v, float) and not 0.0 < v < 1.0:
            raise ValueError(f"{v} (allowed: a fraction in (0, 1), or a count: an integer >= 1)")
        return v

    def sample_size(self) -> int:
        """The number of slots simulated: the count (at most the fleet), or the fraction of the fleet
        rounded to the nearest slot (at least one)."""
        if self.sample is None:
            return self.connections
        if isinstance(self.sample, float):
            return max(1, min(self.connections, round(self.sample * self.connections)))
        return min(self.sample, self.connections)


def fleet_sets_connections(data: Any) -> Any:
    """A ``Scenario`` before-validator: ``fleet.connections`` replaces the top-level ``connections``
    (so ``--set fleet.connections=…`` resizes a config written with ``connections``)."""
    if not isinstance(data, dict) or data.get("fleet") is None:
        return data
    fleet = data["fleet"]
    if not isinstance(fleet, dict):
        return data
    if "connections" not in fleet:  # `--set fleet.sample=…` on a config that sizes its fleet with `connections`
        return {**data, "fleet": {**fleet, "connections": data.get("connections", 1)}}
    return {**data, "connections": fleet["connections"]}


def is_sampled(fleet: Optional[FleetCfg]) -> bool:
    """Does this fleet simulate fewer slots than it has?"""
    return fleet is not None and fleet.sample_size() < fleet.connections


__all__ = ["FleetCfg", "MAX_FLEET", "fleet_sets_connections", "is_sampled"]

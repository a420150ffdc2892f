"""Building blocks of the config schema: the strict base model, durations, keyed errors, integer choices."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from sim.config.durations import config_duration

#: A duration written in a config: seconds (float), from a number or a string with a unit.
Duration = Annotated[float, BeforeValidator(config_duration)]


class KeyedError(ValueError):
    """A ValueError about one entry of a mapping: the loader reports it at ``key`` inside the mapping."""

    def __init__(self, key: Any, message: str) -> None:
        super().__init__(message)
        self.key = key


class Strict(BaseModel):
    """Unknown keys are errors, never ignored; values are never coerced from another type."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def integer_among(*choices: int) -> Any:
    """A BeforeValidator: ``v`` must be a YAML integer (``250.0`` and ``true`` are not)."""
    allowed = ", ".join(str(c) for c in choices)

    def check(v: Any) -> Any:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
            raise ValueError(f"{v!r} is not an integer (allowed: {allowed})")
        return v
    return check

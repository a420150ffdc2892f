"""Traffic classes: ``traffic`` as a list of ``{name, share, …traffic keys, client: {…}}``
(DESIGN §6, docs/config.md#traffic-classes).

A class takes every key a single ``traffic`` mapping takes, and a ``client`` mapping whose keys replace
the top-level ``client`` section's key by key (``kernel`` merges with it, as every host's kernel block
does). ``client.instances`` and ``client.reconnect`` stay fleet-wide. Several classes are addressed
in dotted keys (``--set``, sweep axes) by name: ``traffic.<name>.<key>``.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple, Optional

from pydantic import model_validator

from sim.config.fields import Duration, KeyedError, Strict
from sim.config.hostcfg import Keepalive, KernelCfg, PoolCfg, SynCnt, UserTimeout
from sim.errors import ConfigError

#: how far the shares' sum may be from 1 (they are written as decimals: 0.7 + 0.2 + 0.1 is not 1.0)
SHARE_TOLERANCE = 1e-6
#: client keys a class may not set: the machines the slots run on, and how every slot reconnects
FLEET_WIDE_CLIENT_KEYS = ("instances", "reconnect")
#: traffic keys every class must give alike: the message sizes the devices' byte counts use
FLEET_WIDE_TRAFFIC_KEYS = ("request_bytes", "response_bytes")
#: a class name: it becomes a dotted-key segment and a column value
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}", re.ASCII)


class ClassClientCfg(Strict):
    """A class's own client settings: each key given replaces the top-level ``client``'s (``kernel``
    merges with it). ``instances`` and ``reconnect`` are fleet-wide and stay in the top-level client."""

    keepalive: Optional[Keepalive] = None
    user_timeout: Optional[UserTimeout] = None
    syncnt: SynCnt = None
    kernel: KernelCfg = KernelCfg()
    request_timeout: Optional[Duration] = None
    ping_interval: Optional[Duration] = None
    pool: Optional[PoolCfg] = None

    @model_validator(mode="before")
    @classmethod
    def _fleet_wide(cls, data: Any) -> Any:
        for key in FLEET_WIDE_CLIENT_KEYS:
            if isinstance(data, dict) and key in data:
                raise KeyedError(key, f"client.{key} is fleet-wide, not a class's (allowed: client.{key} in the "
                                      "top-level client section)")
        return data

    def over(self, base: Any) -> Any:
        """The top-level ClientCfg ``base`` with this class's keys on top."""
        given = {k: getattr(self, k) for k in self.model_fields_set if k != "kernel"}
        return base.model_copy(update={**given, "kernel": base.kernel.merged(self.kernel)})


class TrafficClass(NamedTuple):
    """One class, resolved: its name, its share of the fleet, its traffic and its whole client."""

    name: str
    share: float
    traffic: Any  # a TrafficCfg
    client: Any  # a ClientCfg


def check_name(v: str) -> str:
    if not _NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not a class name (allowed: a letter, then letters, digits, _ or -; at most "
                         "64 characters)")
    return v


def check_share(v: float) -> float:
    if not (isinstance(v, (int, float)) and not isinstance(v, bool)) or not 0.0 < v <= 1.0 or math.isnan(v):
        raise ValueError(f"{v!r} is not a share of the fleet (allowed: a number in (0, 1])")
    return float(v)


def classes_problem(traffic: Any) -> tuple[tuple, str, str] | None:
    """(key path, problem, allowed) of a list of classes that is wrong as a whole: empty, a name twice,
    shares that do not sum to 1; None when it is right (or ``traffic`` is one mapping)."""
    if not isinstance(traffic, list):
        return None
    if not traffic:
        return ("traffic",), "an empty list of classes", "a traffic mapping, or a list of {name, share, ...}"
    seen: dict[str, int] = {}
    for i, c in enumerate(traffic):
        if c.name in seen:
            return ("traffic", i, "name"), f"class {c.name!r} is already traffic[{seen[c.name]}]", "unique names"
        seen[c.name] = i
    for key in FLEET_WIDE_TRAFFIC_KEYS:  # the middleboxes count one size per direction for the fleet
        for i, c in enumerate(traffic[1:], start=1):
            if getattr(c, key) != getattr(traffic[0], key):
                return (("traffic", i, key), f"{getattr(c, key)} differs from traffic[0]'s {getattr(traffic[0], key)}",
                        f"the same {key} in every class (a traffic process may size each request: "
                        "conn.request(size_bytes=...))")
    total = math.fsum(c.share for c in traffic)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        shares = " + ".join(f"{c.share:g}" for c in traffic)
        return (("traffic",), f"the shares sum to {total:.6g} ({shares})",
                f"shares that sum to 1 (within {SHARE_TOLERANCE:g})")
    return None


def resolve_classes(traffic: Any, client: Any) -> list[TrafficClass]:
    """Every class of a validated scenario: a single mapping is one class, ``default``, of share 1."""
    from sim.spec.classes import DEFAULT_CLASS

    if not isinstance(traffic, list):
        return [TrafficClass(DEFAULT_CLASS, 1.0, traffic, client)]
    return [TrafficClass(c.name, c.share, c, c.client.over(client)) for c in traffic]


def class_path(raw: dict, path: tuple, label: str = "") -> tuple:
    """A dotted key's path in ``raw``: ``traffic.<name>.<key>`` names a class of a list of classes
    (its index in the path); ``traffic.<key>`` on a list of classes is refused, which class it means
    being unclear. Any other path is returned as it is."""
    traffic = raw.get("traffic") if isinstance(raw, dict) else None
    if not path or path[0] != "traffic" or not isinstance(traffic, list) or len(path) < 2:
        return path
    names = [c.get("name") if isinstance(c, dict) else None for c in traffic]
    if path[1] in names:
        return ("traffic", names.index(path[1])) + tuple(path[2:])
    if isinstance(path[1], int):
        return path
    listed = ", ".join(f"traffic.{n}.{'.'.join(map(str, path[1:]))}" for n in names if isinstance(n, str))
    raise ConfigError(f"traffic is a list of classes: say which class {'.'.join(map(str, path[1:]))!r} is for",
                      file=label or "--set", key=".".join(map(str, path)), allowed=listed or "traffic.<name>.<key>")


__all__ = ["FLEET_WIDE_CLIENT_KEYS", "FLEET_WIDE_TRAFFIC_KEYS", "SHARE_TOLERANCE", "ClassClientCfg", "TrafficClass",
           "check_name", "check_share", "class_path", "classes_problem", "resolve_classes"]

"""Injected faults (docs/config.md#faults): in a time window, the segments of one class going one
way on one leg are dropped, or answered with an RST, where the fault stands.

A fault is a filter, never an event: it is checked against each segment's own time at its position
(``Fault.takes``) when the network carries the segment (sim.model.network). Where it stands:

* a fault on a leg (``downstream``, ``upstream``) stands at the leg's far end, just before the
  receiving host: every middlebox on the way has seen the segment;
* a fault on a middlebox (its profile name) stands at that device, in front of its flow table: the
  device never sees what the fault takes (``FaultedMiddlebox``).

A run without faults has no ``Fault`` objects: a path checks ``faults is not None`` once per
segment and devices are plain ``Middlebox`` objects.
"""

from __future__ import annotations

from typing import Any, Final

from sim.model.middlebox import Middlebox
from sim.model.segment import ACK, DATA, FIN, KIND_NAMES, PROBE, RST, SYN, SYNACK, Seg
from sim.spec import FaultSpec, MiddleboxSpec

#: A middlebox verdict: a fault at the device took the segment, and has already counted, traced and
#: answered it (``take``); the network only stops carrying it.
TAKEN: Final = 3

#: The segment kinds of each ``packets`` class, as bit masks over the kinds (sim.model.segment).
#: An RST belongs to ``all`` only: it is neither a handshake, a close, data nor an acknowledgement.
CLASS_KINDS: Final = {
    "all": (1 << SYN) | (1 << SYNACK) | (1 << ACK) | (1 << DATA) | (1 << PROBE) | (1 << FIN) | (1 << RST),
    "syn": (1 << SYN) | (1 << SYNACK),
    "fin": 1 << FIN,
    "data": 1 << DATA,
    "ack": (1 << ACK) | (1 << PROBE),
}


class Fault:
    """One fault of the run and what it did: ``drops`` and ``rsts`` count the segments it took."""

    __slots__ = ("label", "start_s", "end_s", "kinds", "to_server", "to_client", "rst", "drops", "rsts")

    def __init__(self, index: int, spec: FaultSpec) -> None:
        #: its name in traces and on the RSTs it sends: the config key, ``faults[0]``
        self.label = f"faults[{index}]"
        self.start_s = spec.start_s
        self.end_s = spec.end_s
        self.kinds = CLASS_KINDS[spec.packets]
        self.to_server = spec.direction != "to_client"
        self.to_client = spec.direction != "to_server"
        self.rst = spec.action == "rst"
        self.drops = 0
        self.rsts = 0

    def takes(self, seg: Seg, to_server: bool, t_s: float) -> bool:
        """Does this fault take ``seg``, at its position at ``t_s``, going to the server or not? Its
        own RSTs pass every fault: an RST is never answered, and the sender must hear it."""
        return (self.start_s <= t_s < self.end_s and (self.kinds >> seg.kind) & 1 == 1
                and (self.to_server if to_server else self.to_client) and not seg.origin.startswith("faults["))

    def take(self, path: Any, seg: Seg, q: int, step: int, t_s: float) -> None:
        """The fault takes ``seg`` at hop position ``q`` of ``path`` at ``t_s``: it counts it, marks
        it in the path's trace, tells the receiver its segment is lost (its timers may wait for it)
        and, for ``action: rst``, answers the sender with an exact RST from here, as an LB does. An
        RST is dropped, never answered."""
        answer = self.rst and seg.kind != RST
        if answer:
            self.rsts += 1
        else:
            self.drops += 1
        trace = path.trace
        if trace is not None:
            trace.append((t_s, "fault", "RST" if answer else "drop",
                          f"{self.label}: {'RST for' if answer else 'drops'} {KIND_NAMES[seg.kind]}"))
        waiting = path.b if step > 0 else path.a
        waiting.segment_lost()
        if answer:
            rst = Seg(RST, seg.ack, 0)
            rst.origin = self.label
            rst.provoked_by = seg.kind
            path(None, rst, q, -step, t_s)


def first_taking(faults: tuple[Fault, ...], seg: Seg, to_server: bool, t_s: float) -> Fault | None:
    """The first fault, in config order, that takes ``seg`` (None if it passes them all)."""
    for fault in faults:
        if fault.takes(seg, to_server, t_s):
            return fault
    return None


def make_faults(specs: tuple[FaultSpec, ...]) -> list[Fault]:
    """The run's faults, in config order."""
    return [Fault(i, s) for i, s in enumerate(specs)]


def leg_faults(faults: list[Fault], specs: tuple[FaultSpec, ...], leg: str) -> tuple[Fault, ...] | None:
    """The faults standing on ``leg`` (``downstream``, ``upstream``), or None when there are none."""
    on_leg = tuple(f for f, s in zip(faults, specs, strict=True) if s.leg == leg)
    return on_leg or None


def device_faults(faults: list[Fault], specs: tuple[FaultSpec, ...], device: str) -> tuple[Fault, ...]:
    """The faults standing at the middlebox named ``device``."""
    return tuple(f for f, s in zip(faults, specs, strict=True) if s.leg == device)


def counts(faults: list[Fault]) -> list[list[int]]:
    """``[[drops, rsts], ...]`` per fault, in config order (the run's records)."""
    return [[f.drops, f.rsts] for f in faults]


class FaultedMiddlebox(Middlebox):
    """A middlebox with faults standing in front of it: what they take, its flow table never sees.
    A verdict of ``TAKEN`` leaves the fault that took the segment in ``took``, for the network to
    apply at this device's position (``Fault.take``); the device itself may stand on two paths (a
    terminating LB's view), so only the network knows which one."""

    __slots__ = ("faults",)

    def __init__(self, spec: MiddleboxSpec, sched: Any, payload_bytes: tuple[int, int], leg: str, bucket_s: float,
                 faults: tuple[Fault, ...]) -> None:
        super().__init__(spec, sched, payload_bytes, leg, bucket_s)
        self.faults = faults

    def admit(self, seg: Seg, from_client: bool, t_s: float, instance: int = 0, klass: int = 0) -> int:
        self.took = first_taking(self.faults, seg, from_client, t_s)
        return super().admit(seg, from_client, t_s, instance, klass) if self.took is None else TAKEN

    def handle(self, flow: Any, kind: int, seg: Any, from_client: bool, t_s: float) -> int:
        self.took = first_taking(self.faults, seg, from_client, t_s)
        if self.took is None:
            return super().handle(flow, kind, seg, from_client, t_s)
        return TAKEN

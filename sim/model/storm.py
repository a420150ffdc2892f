"""Storms with a cause and the client's reconnect backoff (docs/model.md, "Storms and reconnect
policies").

A storm costs one event for the fleet (``deregister``, ``drop_all``: the device forgets the flows
it holds) or one per slot (``rollout``: Envoy drains that slot's connection at its own time). A
slot that backs off holds one pending call until its delay is over; nothing polls.

Backoff delays follow the AWS Architecture Blog, "Exponential Backoff And Jitter" (Marc Brooker,
2015, https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/): for attempt n the
exponential delay is d = min(cap, base x 2^n), and

* ``none``: d;
* ``full``: U(0, d);
* ``equal``: d/2 + U(0, d/2);
* ``decorrelated``: min(cap, U(base, 3 x previous delay)), the first "previous" being base.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import numpy as np

from sim.model.segment import ESTABLISHED
from sim.spec import ReconnectSpec, StormSpec

if TYPE_CHECKING:  # for types only: scenario imports this module
    from sim.model.middlebox import Middlebox
    from sim.model.scenario import World

#: 2^n beyond this is far above any cap (and stays a finite float)
_MAX_DOUBLINGS: Final = 60


def backoff_delay_s(jitter: str, attempt: int, base_s: float, cap_s: float, prev_s: float, u: float) -> float:
    """The delay (seconds) before reconnect attempt ``attempt`` (0 = the first after a success),
    given ``u``, a uniform draw in [0, 1), and ``prev_s``, the previous delay (decorrelated only)."""
    if jitter == "decorrelated":
        return min(cap_s, base_s + u * (3.0 * prev_s - base_s))
    d = min(cap_s, base_s * 2.0 ** min(attempt, _MAX_DOUBLINGS))
    if jitter == "full":
        return u * d
    if jitter == "equal":
        return d / 2 + u * (d / 2)
    return d


class Backoff:
    """One slot's backoff state: failed attempts since its last successful connect, the previous
    delay, and its own random stream (made at the first draw: most slots never back off)."""

    __slots__ = ("spec", "seed", "index", "attempts", "prev_s", "rng")

    def __init__(self, spec: ReconnectSpec, seed: int, index: int) -> None:
        self.spec = spec
        self.seed = seed
        self.index = index
        self.attempts = 0
        self.prev_s = spec.base_s
        self.rng: np.random.Generator | None = None

    def reset(self) -> None:
        """A connect succeeded: the next delay is the first again."""
        self.attempts = 0
        self.prev_s = self.spec.base_s

    def next_delay_s(self) -> float:
        spec = self.spec
        u = 0.0
        if spec.jitter != "none":
            if self.rng is None:
                self.rng = slot_rng(self.seed, self.index)
            u = float(self.rng.random())
        d = backoff_delay_s(spec.jitter, self.attempts, spec.base_s, spec.cap_s, self.prev_s, u)
        self.attempts += 1
        self.prev_s = d
        return d


#: spawn keys of the storm's random streams under the run's seed (scenario.py has 1-3)
STREAM_RECONNECT: Final = 4
STREAM_ROLLOUT: Final = 5


def slot_rng(seed: int, index: int) -> np.random.Generator:
    """Slot ``index``'s reconnect stream: its draws depend on (seed, slot) alone."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(STREAM_RECONNECT, index)))


def slot_uniforms(seed: int, indices: list[int]) -> np.ndarray:
    """One uniform draw in [0, 1) for each slot index, a function of (seed, slot) alone: SplitMix64
    of the slot index under a key from ``SeedSequence(seed, spawn_key=(5,))``. A chunk of the fleet
    gets the same values as the whole, in memory of its own size (no fleet-sized array)."""
    key = np.random.SeedSequence(seed, spawn_key=(STREAM_ROLLOUT,)).generate_state(1, dtype=np.uint64)[0]
    x = np.asarray(indices, dtype=np.uint64) + np.uint64(1)
    with np.errstate(over="ignore"):  # the arithmetic is modulo 2^64 on purpose
        x = x * np.uint64(0x9E3779B97F4A7C15) + key
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)


def hold(slot: Any) -> None:
    """The slot waits its backoff delay before it reconnects (ClientSlot._backoff_over then)."""
    backoff = slot.backoff
    if backoff is None:
        backoff = slot.backoff = Backoff(slot.world.spec.client.reconnect, slot.world.seed, slot.index)
    slot.held = True
    world = slot.world
    world.sched.call_at(world.now() + backoff.next_delay_s(), slot._backoff_over)


def arm(world: World, storm: StormSpec, seed: int) -> None:
    """Schedule ``storm`` in ``world`` (its slots built)."""
    sched = world.sched
    if storm.kind == "rollout":
        slots = world.slots
        u = slot_uniforms(seed, [slot.index for slot in slots])
        for slot, ui in zip(slots, u.tolist(), strict=True):
            sched.call_at(storm.start_s + ui * storm.window_s, _drain, (slot, storm.goaway))
        return
    mbs = world.ds_mbs if storm.leg == "downstream" else world.us_mbs
    mb = mbs[storm.device]
    mb.storm_flows = []
    sched.call_at(storm.start_s, _forget_all, mb)


def _forget_all(mb: Middlebox) -> None:
    """``drop_all`` / ``deregister``: the device forgets every flow it holds now (an entry whose
    idle timer already ran out expired then, as ever)."""
    flows = mb.storm_flows
    mb.storm_flows = None
    if flows is None:
        return
    t_s = mb.sched.now_s
    for flow in flows:
        if flow.alive:
            mb.check_expired(flow, t_s)
            if flow.alive:
                mb.forget(flow, t_s)


def _drain(arg: tuple[Any, bool]) -> None:
    """``rollout``: the gateway that holds this slot's connection drains it (GOAWAY or FIN)."""
    slot, goaway = arg
    conn = slot.conn
    if conn is None or conn.cs.state != ESTABLISHED:
        return  # nothing established to drain: a connection opened now reaches the new gateway
    owner = conn.ss.owner
    back = getattr(owner, "back", None)  # a terminating LB in front: Envoy is behind its back leg
    if back is not None:
        owner = back.ss.owner
    drain = getattr(owner, "drain", None)
    if drain is not None:
        drain(goaway)

"""Traffic classes (``traffic: [{name, share, ...}]``): each client slot's class, computed from the slot's
index alone (docs/config.md#traffic-classes).

The fleet of N slots is split into classes of N_h slots (largest-remainder counts of ``share × N``).
The classes are dealt out one after another, each spread evenly over the slots the classes before it
left: class 0 takes slots ``floor(j × N / N_0)``, j = 0 … N_0 - 1; class 1 takes, of the M_1 = N - N_0
slots left (in order), the ones at ranks ``floor(j × M_1 / N_1)``; and so on, the last class taking
what is left. Every class is spread over the whole ramp, a slot's class is the same whatever else
runs (a sampled slot has its class of the full run), and neither classifying a slot nor finding a
class's j-th slot needs the fleet in memory: both are a few integer operations per class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sim.spec.world import ClassSpec

__all__ = ["DEFAULT_CLASS", "ClassSpec", "class_counts", "class_slots", "slot_class", "slot_classes"]

#: the name of the one class of a config whose ``traffic`` is a single mapping
DEFAULT_CLASS = "default"


def class_counts(shares: Sequence[float], n: int) -> tuple[int, ...]:
    """Slots per class of a fleet of ``n``: ``share × n`` rounded by largest remainders (ties to the
    class listed first), so that they sum to ``n``."""
    total = math.fsum(shares)
    exact = [s / total * n for s in shares]
    counts = [math.floor(x) for x in exact]
    order = sorted(range(len(shares)), key=lambda h: (-(exact[h] - counts[h]), h))
    for h in order[: n - sum(counts)]:
        counts[h] += 1
    return tuple(counts)


def _levels(counts: Sequence[int]) -> list[tuple[int, int]]:
    """(slots left before class h is dealt, class h's count) for every class."""
    out, left = [], sum(counts)
    for c in counts:
        out.append((left, c))
        left -= c
    return out


def slot_class(slot: int, counts: Sequence[int]) -> int:
    """The class index of ``slot`` (0 … N - 1) in a fleet split into ``counts``."""
    p = slot
    for h, (m, c) in enumerate(_levels(counts)):
        if c == m:
            return h
        if c:
            j = -(-p * c // m)  # the first of class h's picks at or after rank p
            if j * m < (p + 1) * c:  # floor(j m / c) == p: rank p is class h's
                return h
            p -= j  # rank among the slots class h left
    raise ValueError(f"slot {slot} is outside a fleet of {sum(counts)}")


def slot_classes(slots: Sequence[int] | np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """``slot_class`` of many slots at once (int64 array)."""
    p = np.asarray(slots, dtype=np.int64).copy()
    out: np.ndarray = np.full(len(p), -1, dtype=np.int64)
    todo: np.ndarray = np.ones(len(p), dtype=bool)
    for h, (m, c) in enumerate(_levels(counts)):
        if c == m:
            out[todo] = h
            break
        if c:
            j = -(-p * c // m)
            mine = todo & (j * m < (p + 1) * c)
            out[mine] = h
            todo &= ~mine
            p = np.where(todo, p - j, p)
    return out


def class_slots(h: int, ranks: Sequence[int] | np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """The slots of class ``h`` at ``ranks`` (0 … N_h - 1, in slot order): the inverse of
    ``slot_class``, without listing the fleet."""
    levels = _levels(counts)
    m, c = levels[h]
    r = np.asarray(ranks, dtype=np.int64)
    if not c:  # an empty class (a share too small for the fleet) has no slots to find
        return r[:0]
    p = r * m // c  # its rank among the slots left when class h is dealt
    for g in range(h - 1, -1, -1):
        m, c = levels[g]
        if not c:
            continue
        # the slot of rank p among those class g left: the last q with f(q) = q - ceil(q c / m) <= p.
        # f(q) lies in (q (m - c) / m - 1, q (m - c) / m], so q is within m / (m - c) + 1 of p m / (m - c):
        # a binary search over that span
        lo = p * m // (m - c)
        hi = lo + m // (m - c) + 2
        while np.any(lo < hi):
            mid = (lo + hi + 1) // 2
            ok = mid - (-(-mid * c // m)) <= p
            lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1)
        q = lo
        p = q
    return p

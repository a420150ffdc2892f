"""The scheduler's binary heaps (clock.py): entries ordered by ``(time, id)``.

An entry keeps its time and id as plain fields, so the compiled core compares them as a C double and
a C integer. With ``heapq`` an entry was a tuple ``(time, id, event)``: every push boxed the time and
the id (ids start at 2**48, far beyond CPython's cached small ints) into objects of their own, and
every comparison went through the tuple's generic rich comparison, item by item. Ids are unique
within a scheduler, so no two entries tie and the order of the pops is the one ``heapq`` gave.

The plain-Python core keeps ``heapq`` (``PLAIN``): its loops in C, comparing through
``Entry.__lt__``, beat these loops interpreted. Both are tested against ``heapq`` on tuples.
"""

from __future__ import annotations

import heapq
from typing import Any, Final

#: Whether this module runs as plain Python (``SIM_PURE``, or no compiler at install). Then
#: ``heapq``'s loops, in C, comparing through ``Entry.__lt__``, are faster than the ones below
#: interpreted; compiled, the ones below are (they compare without a call).
PLAIN: Final = __file__.endswith(".py")


class Entry:
    """One queued event: ``ev`` runs at ``t_s``; at equal times the smaller ``eid`` runs first."""

    __slots__ = ("t_s", "eid", "ev")

    def __init__(self, t_s: float, eid: int, ev: Any) -> None:
        self.t_s = t_s
        self.eid = eid
        self.ev = ev

    def __lt__(self, other: Entry) -> bool:
        """``before``, for ``heapq`` (plain Python only; written out, a call is dear there)."""
        return self.t_s < other.t_s or (self.t_s == other.t_s and self.eid < other.eid)


def before(a: Entry, b: Entry) -> bool:
    """``a`` runs before ``b``: ``(a.t_s, a.eid) < (b.t_s, b.eid)``."""
    return a.t_s < b.t_s or (a.t_s == b.t_s and a.eid < b.eid)


def push(heap: list[Entry], entry: Entry) -> None:
    """``heapq.heappush``."""
    if PLAIN:
        heapq.heappush(heap, entry)
    else:
        sift_push(heap, entry)


def pop(heap: list[Entry]) -> Entry:
    """``heapq.heappop``: the earliest entry (the heap is not empty)."""
    return heapq.heappop(heap) if PLAIN else sift_pop(heap)


def heapify(heap: list[Entry]) -> None:
    """``heapq.heapify``, in place."""
    if PLAIN:
        heapq.heapify(heap)
    else:
        sift_heapify(heap)


# heapq's algorithms, comparing with ``before``: what ``push``, ``pop`` and ``heapify`` run compiled.
def sift_push(heap: list[Entry], entry: Entry) -> None:
    """``entry`` rises from the end to its place."""
    heap.append(entry)
    _rise(heap, len(heap) - 1, 0, entry)


def _rise(heap: list[Entry], pos: int, start: int, entry: Entry) -> None:
    """Put ``entry`` in the hole at ``pos``, moving it up past the later parents, not above ``start``
    (``heapq._siftdown``)."""
    while pos > start:
        parent_pos = (pos - 1) >> 1
        parent = heap[parent_pos]
        if not before(entry, parent):
            break
        heap[pos] = parent
        pos = parent_pos
    heap[pos] = entry


def _sift(heap: list[Entry], pos: int, entry: Entry) -> None:
    """Fill the hole at ``pos`` with ``entry`` (``heapq._siftup``): the smaller child moves up
    until the hole is a leaf, and ``entry`` then rises from there, which takes fewer comparisons
    than stopping on the way down."""
    end = len(heap)
    start = pos
    child = 2 * pos + 1
    while child < end:
        right = child + 1
        if right < end and not before(heap[child], heap[right]):
            child = right
        heap[pos] = heap[child]
        pos = child
        child = 2 * pos + 1
    _rise(heap, pos, start, entry)


def sift_pop(heap: list[Entry]) -> Entry:
    """The earliest entry (the heap is not empty)."""
    last = heap.pop()
    if not heap:
        return last
    top = heap[0]
    _sift(heap, 0, last)
    return top


def sift_heapify(heap: list[Entry]) -> None:
    """Make ``heap`` a heap, in place."""
    for pos in range(len(heap) // 2 - 1, -1, -1):
        _sift(heap, pos, heap[pos])

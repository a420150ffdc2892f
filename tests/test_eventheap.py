"""The scheduler's own heaps (sim/model/eventheap.py) give the order heapq gave on (time, id) tuples."""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.model import eventheap
from sim.model.eventheap import Entry, before

# Times on a coarse grid so that many entries tie on time and the ids decide; ids are unique in a
# scheduler, and the ops interleave pushes, pops and a heapify of a bucket, as Scheduler does.
_ops = st.lists(st.one_of(
    st.tuples(st.just("push"), st.integers(0, 40)),
    st.tuples(st.just("pop"), st.just(0)),
    st.tuples(st.just("bucket"), st.lists(st.integers(0, 40), max_size=12)),
), max_size=80)


# The scheduler's calls (heapq itself on the plain core), and the sift loops the compiled core runs
# (tested on both cores, so that the plain core's coverage sees them too).
WAYS = {"scheduler": (eventheap.push, eventheap.pop, eventheap.heapify),
        "sift": (eventheap.sift_push, eventheap.sift_pop, eventheap.sift_heapify)}


@pytest.mark.parametrize("way", sorted(WAYS))
@settings(max_examples=300, derandomize=True, deadline=None)
@given(ops=_ops)
def test_pushes_pops_and_heapified_buckets_come_out_in_heapqs_order(way, ops):
    push, pop, heapify = WAYS[way]
    mine: list[Entry] = []
    ref: list[tuple[float, int, str]] = []
    eid = 1 << 48
    popped_mine, popped_ref = [], []
    for op, arg in ops:
        if op == "push":
            eid += 1
            push(mine, Entry(arg / 4, eid, f"e{eid}"))
            heapq.heappush(ref, (arg / 4, eid, f"e{eid}"))
        elif op == "pop" and ref:
            e = pop(mine)
            popped_mine.append((e.t_s, e.eid, e.ev))
            popped_ref.append(heapq.heappop(ref))
        elif op == "bucket" and not ref:  # Scheduler._next_window: an empty queue takes a bucket whole
            for t in arg:
                eid += 1
                mine.append(Entry(t / 4, eid, f"e{eid}"))
                ref.append((t / 4, eid, f"e{eid}"))
            heapify(mine)
            heapq.heapify(ref)
    while ref:
        e = pop(mine)
        popped_mine.append((e.t_s, e.eid, e.ev))
        popped_ref.append(heapq.heappop(ref))
    assert not mine
    assert popped_mine == popped_ref


def test_at_equal_times_the_smaller_id_runs_first():
    a, b, c = Entry(5.0, 7, "a"), Entry(5.0, 9, "b"), Entry(4.0, 100, "c")
    assert before(a, b) and not before(b, a) and before(c, a) and not before(a, a)
    heap: list[Entry] = []
    for e in (b, a, c):
        eventheap.push(heap, e)
    assert [eventheap.pop(heap).ev for _ in range(3)] == ["c", "a", "b"]

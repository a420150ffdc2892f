"""What a middlebox counts, kept per traffic class (docs/outputs.md#traffic-classes).

A device keeps one ``Ledger`` per traffic class of its world, and each flow holds the ledger of its
connection's class (the class of the slot whose connection it is: the rule of the ``class`` column),
so a packet is counted where it belongs at no extra cost: a world of one class has one ledger per
device, touched as the device's own counters were. The device's figures are its ledgers' sums.
"""

from __future__ import annotations

from typing import Final

#: the device record's fields a ledger gives (``Ledger.export``); counts, then series
LEDGER_COUNTS: Final = ("keepalive_packets", "lb_rsts", "new_flows", "ping_packets")


class Ledger:
    """One traffic class's counts and capacity series at one device."""

    __slots__ = ("keepalive_packets", "ping_packets", "lb_rsts", "new_flows", "intervals", "ka_per_bucket",
                 "bytes_per_bucket", "new_per_s")

    def __init__(self) -> None:
        #: keepalive packets (probes, probe ACKs, HTTP/2 PINGs and PING ACKs) and of those the PINGs
        self.keepalive_packets = 0
        self.ping_packets = 0
        #: RSTs the device made (late packets, an expiry's notice, a full table's refusal)
        self.lb_rsts = 0
        self.new_flows = 0
        #: (start_s, end_s) of every flow-table entry
        self.intervals: list[tuple[float, float]] = []
        #: keepalive packets and bytes per series bucket, new flows per second (sparse)
        self.ka_per_bucket: list[int] = []
        self.bytes_per_bucket: list[int] = []
        self.new_per_s: dict[int, int] = {}

    def export(self) -> dict:
        """Its part of a device record (sim.model.middlebox.Middlebox.export), the lists themselves."""
        return {"keepalive_packets": self.keepalive_packets, "lb_rsts": self.lb_rsts, "new_flows": self.new_flows,
                "ping_packets": self.ping_packets, "intervals": self.intervals,
                "keepalive_per_bucket": self.ka_per_bucket, "bytes_per_bucket": self.bytes_per_bucket,
                "new_flows_per_s": self.new_per_s}


def sum_counts(counts: list[dict[int, int]]) -> dict[int, int]:
    """Sparse per-second counts added up."""
    out: dict[int, int] = {}
    for c in counts:
        for k, v in c.items():
            out[k] = out.get(k, 0) + v
    return out


def sum_lists(lists: list[list[int]]) -> list[int]:
    """Series of buckets added up bucket by bucket (the longest's length)."""
    n = max((len(x) for x in lists), default=0)
    return [sum(x[i] for x in lists if i < len(x)) for i in range(n)]


def merge_ledgers(parts: list[dict]) -> dict:
    """Ledger records (``Ledger.export``) of disjoint flows, as one: counts and series summed,
    intervals joined."""
    return {**{k: sum(p[k] for p in parts) for k in LEDGER_COUNTS},
            "intervals": [iv for p in parts for iv in p["intervals"]],
            "keepalive_per_bucket": sum_lists([p["keepalive_per_bucket"] for p in parts]),
            "bytes_per_bucket": sum_lists([p["bytes_per_bucket"] for p in parts]),
            "new_flows_per_s": sum_counts([p["new_flows_per_s"] for p in parts])}

"""Shortcuts the model takes for speed must not change what it computes.

* A keepalive expiry whose outcome is known when the probe is sent is kept virtual
  (``Shortcuts.virtual_keepalive_expiry``): with it off, every expiry is an event. Both must give the same
  records, counters and packet timeline, on configs where probes are answered, go unanswered
  (blackholed flows), are rate limited, or meet requests that arrive inside the interval.
* The loss probe (R29) retransmits the tail segment with its own sequence number.
"""

from __future__ import annotations

import pytest

from sim.config.load import load_config
from sim.execution import run_one
from sim.model.clock import Clock, Scheduler
from sim.model.host import Host
from sim.model.kernel import TcpSocket
from sim.model.segment import ACK, DATA, ESTABLISHED, Seg
from sim.spec import Shortcuts

CASES = {
    "nlb-wheel": ("configs/nlb.yaml", ["connections=60", "duration=4h"]),
    # probes near the NLB's 350 s: flows expire, late probes meet RSTs or nothing
    "nlb-near-edge": ("configs/nlb.yaml", ["connections=60", "duration=4h", "envoy.listener.keepalive.idle=345"]),
    "nlb-exact": ("configs/nlb.yaml", ["connections=40", "duration=3h", "kernel.timers=exact",
                                       "envoy.listener.keepalive.interval=75"]),
    "fleet-idle": ("configs/fleet-idle.yaml", ["connections=50", "duration=2h"]),
    "azure-blackhole": ("configs/azure-lb-blackhole.yaml", ["connections=40", "duration=3h"]),
    "keepalive-inversion": ("configs/keepalive-inversion.yaml", ["connections=40", "duration=3h"]),
    "grpc-pings": ("configs/grpc-pings.yaml", ["connections=30", "duration=2h"]),
    # a 1.2 s round trip: requests often land between a probe and its answer (and Envoy, waiting 8 s
    # on the upstream, sends nothing before the next expiry); with a 1 s interval the answer comes
    # after the next expiry, which must then probe again
    "slow-path-requests": ("configs/nlb.yaml", ["connections=60", "duration=3h", "network.one_way_delay=300ms",
                                                "traffic.request_gap={exponential: 2m}",
                                                "envoy.listener.keepalive.idle=60",
                                                "envoy.listener.keepalive.interval=5",
                                                "traffic.service_time={fixed: 8s}"]),
    "slow-path-short-interval": ("configs/nlb.yaml", ["connections=30", "duration=2h",
                                                      "network.one_way_delay=300ms",
                                                      "envoy.listener.keepalive.idle=60",
                                                      "envoy.listener.keepalive.interval=1"]),
}


def same_columns(a: dict[str, list], b: dict[str, list]) -> bool:
    """Column-wise equality where NaN equals NaN (a compiled core makes a new NaN object per value,
    so list equality's identity shortcut does not apply)."""
    def same(x, y) -> bool:
        return x == y or (x != x and y != y)

    return a.keys() == b.keys() and all(
        len(a[k]) == len(b[k]) and all(same(x, y) for x, y in zip(a[k], b[k], strict=True)) for k in a
    )


def _run(path: str, overrides: list[str], defer: bool) -> tuple:
    sc = load_config(path, [*overrides, "replications=1"]).scenario
    rec = run_one(sc, 3, trace_conn=0, shortcuts=Shortcuts(virtual_keepalive_expiry=defer))
    return rec, rec.run["events"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_virtual_keepalive_expiry_changes_nothing(case):
    path, overrides = CASES[case]
    fast, fast_events = _run(path, overrides, True)
    slow, slow_events = _run(path, overrides, False)
    assert same_columns(fast.columns, slow.columns)
    assert fast.counters == slow.counters
    assert fast.trace == slow.trace
    assert sorted(fast.flow_intervals) == sorted(slow.flow_intervals)
    assert fast_events <= slow_events


def test_the_shortcut_removes_events_where_probes_are_answered():
    path, overrides = CASES["fleet-idle"]
    _, fast = _run(path, overrides, True)
    _, slow = _run(path, overrides, False)
    # every answered probe saves the expiry one interval later (probe at 300 s, expiry at 320 s)
    assert fast < 0.8 * slow


def test_loss_probe_retransmits_the_tail_with_its_own_sequence_number():
    # R29: the first ACK back is lost, so the TLP fires at PTO and resends message 0 as
    # (seq 0, ack = rcv_nxt, payload); the receiver, already past it, answers with a dupACK that
    # acknowledges it, and the sender's retransmission episode ends.
    sched = Scheduler()
    host = Host("h", sched, Clock(1000, True))
    sent: list[tuple[str, int, int, object]] = []
    dropped: list[Seg] = []

    class Owner:
        def on_established(self, sock): pass
        def on_data(self, sock, payload): pass
        def on_peer_fin(self, sock, seg): pass
        def on_error(self, sock, errno, cause, seg): raise AssertionError(errno)

    def wire(sock, seg):
        dst = b if sock is a else a
        if sock is a and seg.kind == DATA:
            sent.append(("data", seg.seq, seg.ack, seg.payload))
        if sock is b and seg.kind == ACK and not dropped and a.snd_nxt == 1:
            dropped.append(seg)  # the ACK of message 0 vanishes
            return False
        sched.call_at(sched.now_s + 0.001, dst.receive, seg)
        return False  # not "delivered" as the network means it: timers are queued at once

    a, b = TcpSocket(host, Owner(), wire), TcpSocket(host, Owner(), wire)
    for s in (a, b):
        s.set_rtt(0.002)
        s.state = ESTABLISHED
    a.send("m0")
    sched.run(5.0)
    assert len(dropped) == 1
    assert sent[0] == ("data", 0, 0, "m0")
    assert sent[1] == ("data", 0, 0, "m0")  # the TLP: same seq, an integer ack, the payload
    assert a.unacked is None and a.snd_una == 1

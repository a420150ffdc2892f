"""Worked examples of kernel-keepalive.md §14, nominal (exact) and quantised (wheel) timing."""

from __future__ import annotations

import pytest

from sim.facts.kernel import SockOptError, retries_timeout_s
from sim.model.host import SockOpts
from sim.model.segment import ECONNRESET, ETIMEDOUT
from tests.kernel_harness import Harness

EXACT = 1e-9


def test_example1_dead_peer_probes_then_rst_at_380():
    # Example 1 / R17, R19, R20: I=300 V=20 C=4, probes at 300..360, RST + ETIMEDOUT at 380.
    h = Harness()
    h.establish((300, 20, 4))
    h.run(1000)
    assert h.times("probe") == pytest.approx([300, 320, 340, 360], abs=EXACT)
    assert h.times("rst") == pytest.approx([380], abs=EXACT)
    assert h.errors == [(pytest.approx(380, abs=EXACT), ETIMEDOUT, "keepalive")]


def test_example2_middlebox_rsts_first_probe():
    # Example 2 / R23, R26: the stateless box answers probe 1 with an exact RST → ECONNRESET at 300 + RTT.
    h = Harness(peer="rst", rtt_s=0.002)
    h.establish((300, 20, 4))
    h.run(1000)
    assert h.times("probe") == pytest.approx([300], abs=EXACT)
    assert h.times("rst") == []  # no RST from us
    assert h.errors == [(pytest.approx(300.002, abs=EXACT), ECONNRESET, "rst")]


@pytest.mark.parametrize(
    "user_timeout_ms, probes, death",
    [
        (30000, [300], 320),  # k* = max(1, ceil((30-300)/20)) = 1
        (400000, [300, 320, 340, 360, 380], 400),  # k* = 5, C=4 ignored
        (410000, [300, 320, 340, 360, 380, 400], 420),  # k* = 6
    ],
)
def test_example3_user_timeout_replaces_count(user_timeout_ms, probes, death):
    # Example 3 / R17, R20: with U > 0 the kill test is elapsed >= U and PO > 0.
    h = Harness()
    h.establish((300, 20, 4), user_timeout_ms=user_timeout_ms)
    h.run(2000)
    assert h.times("probe") == pytest.approx(probes, abs=EXACT)
    assert h.errors == [(pytest.approx(death, abs=EXACT), ETIMEDOUT, "keepalive")]


def _send_into_blackhole(h: Harness) -> list[float]:
    h.sock.send("req")
    return [t for t, k in h.sent if k == "3"]  # DATA copies


def test_example4_user_timeout_with_data_outstanding():
    # Example 4 / R29, R31, R34: TLP 0.204, R1 0.408, death at R1 + 30 = 30.408 with no RST.
    h = Harness()
    h.establish((300, 20, 4), user_timeout_ms=30000)
    h.sock.send("req")
    h.run(100)
    data = [t for t, k in h.sent if k == "3"]
    assert data[:4] == pytest.approx([0, 0.204, 0.408, 0.816], abs=EXACT)
    assert h.times("probe") == []  # R15: keepalive is suppressed while data is outstanding
    assert h.times("rst") == []  # R33
    assert h.errors == [(pytest.approx(30.408, abs=EXACT), ETIMEDOUT, "retrans")]


def test_example5_default_retries2_dies_after_15_rto_retransmissions():
    # Example 5 / R30-R35: 1 TLP + 15 RTO retransmissions, ETIMEDOUT at 928.896 s.
    h = Harness()
    h.establish((300, 20, 4))
    h.sock.send("req")
    h.run(2000)
    data = [t for t, k in h.sent if k == "3"]
    expected = [0, 0.204, 0.408, 0.816, 1.632, 3.264, 6.528, 13.056, 26.112, 52.224, 104.448, 208.896,
                328.896, 448.896, 568.896, 688.896, 808.896]
    assert data == pytest.approx(expected, abs=EXACT)
    assert h.errors == [(pytest.approx(928.896, abs=EXACT), ETIMEDOUT, "retrans")]
    assert h.times("rst") == []


def test_retries2_3_dies_at_fifth_rto_expiry():
    # Example 5 variant: tcp_retries2=3 (T = 3.0 s) → ETIMEDOUT at 6.528 after 4 RTO retransmissions.
    h = Harness(sysctl={"net.ipv4.tcp_retries2": 3})
    h.establish((300, 20, 4))
    h.sock.send("req")
    h.run(100)
    assert retries_timeout_s(3) == pytest.approx(3.0)
    assert retries_timeout_s(15) == pytest.approx(924.6)
    assert h.errors == [(pytest.approx(6.528, abs=EXACT), ETIMEDOUT, "retrans")]


def test_example6_packetdrill_case():
    # Example 6 / R20: I=3 V=2 C=4 → probes 3, 5, 7, 9; RST at 11.
    h = Harness()
    h.establish((3, 2, 4))
    h.run(100)
    assert h.times("probe") == pytest.approx([3, 5, 7, 9], abs=EXACT)
    assert h.times("rst") == pytest.approx([11], abs=EXACT)


@pytest.mark.parametrize("new_idle, probes, death", [(5, [5, 7], 9), (1, [2, 4], 6)])
def test_example9_keepidle_changed_on_live_socket(new_idle, probes, death):
    # Example 9 / R7: TCP_KEEPIDLE re-arms KT to now + max(0, I' - elapsed).
    h = Harness()
    h.establish((100, 2, 2))
    h.sched.call_at(2.0, lambda _: h.sock.set_keepidle(new_idle))
    h.run(200)
    assert h.times("probe") == pytest.approx(probes, abs=EXACT)
    assert h.errors == [(pytest.approx(death, abs=EXACT), ETIMEDOUT, "keepalive")]


def test_example11_live_peer_probes_every_idle_plus_rtt():
    # Example 11 / R10, R16: each answer zeroes PO; with V - r < I the period is I + r.
    h = Harness(peer="live", rtt_s=0.002)
    h.establish((3, 2, 2))
    h.run(12.5)
    assert h.times("probe") == pytest.approx([3, 6.002, 9.004, 12.006], abs=EXACT)
    assert h.errors == []


def test_example11_live_peer_probes_every_interval_when_interval_exceeds_idle():
    # Example 11 second case: I=2 V=5 → probe again at each V evaluation.
    h = Harness(peer="live", rtt_s=0.002)
    h.establish((2, 5, 2))
    h.run(13)
    assert h.times("probe") == pytest.approx([2, 7, 12], abs=EXACT)


def test_keepcnt_zero_sysctl_resets_without_probe():
    # R4 / S32: tcp_keepalive_probes=0 with no per-socket count → RST at the first due check.
    h = Harness(sysctl={"net.ipv4.tcp_keepalive_probes": 0})
    h.establish((2, 1, 0))
    h.run(10)
    assert h.times("probe") == []
    assert h.errors == [(pytest.approx(2, abs=EXACT), ETIMEDOUT, "keepalive")]


def test_sysctl_fallback_when_no_per_socket_value():
    # R1, R2: SO_KEEPALIVE alone uses the netns sysctls (here shortened).
    h = Harness(sysctl={"net.ipv4.tcp_keepalive_time": 10, "net.ipv4.tcp_keepalive_intvl": 3,
                        "net.ipv4.tcp_keepalive_probes": 2})
    h.establish((0, 0, 0))
    h.run(100)
    assert h.times("probe") == pytest.approx([10, 13], abs=EXACT)
    assert h.errors[0][0] == pytest.approx(16, abs=EXACT)


@pytest.mark.parametrize("setter, value", [("set_keepidle", 0), ("set_keepidle", 32768), ("set_keepintvl", 0),
                                           ("set_keepintvl", 32768), ("set_keepcnt", 0), ("set_keepcnt", 128),
                                           ("set_user_timeout", -1)])
def test_setsockopt_ranges_are_einval(setter, value):
    # R3 / S20
    h = Harness()
    with pytest.raises(SockOptError):
        getattr(h.sock, setter)(value)


def test_boundaries_accepted():
    h = Harness()
    h.sock.set_keepidle(32767)
    h.sock.set_keepcnt(127)
    h.sock.set_user_timeout(0)


# ----------------------------------------------------------------------------- wheel (R40)
@pytest.mark.parametrize("phase_j", [0.0, 1234.5, 77777.25, 1999999.9])
def test_wheel_hz250_interval_20s_becomes_20_48_and_first_probe_late_within_g(phase_j):
    h = Harness(exact=False, phase_j=phase_j)
    h.establish((300, 20, 4))
    h.run(1000)
    probes = h.times("probe")
    lateness = probes[0] - 300
    assert 0 < lateness <= 16.384 + 1e-6  # level 4 at HZ=250: g = 4096 jiffies
    gaps = [b - a for a, b in zip(probes, probes[1:] + h.times("rst"), strict=True)]
    assert gaps == pytest.approx([20.48] * 4, abs=1e-6)


@pytest.mark.parametrize("phase_j", [0.0, 3.5, 100.0, 511.0])
def test_wheel_hz250_interval_75s_aligned_is_75_776(phase_j):
    # S33: I=1 V=75 C=2: the first interval is unaligned, the next one exactly 75.776 s.
    h = Harness(exact=False, phase_j=phase_j)
    h.establish((1, 75, 2))
    h.run(1000)
    probes = h.times("probe")
    rst = h.times("rst")[0]
    assert 75.0 < probes[1] - probes[0] <= 75.0 + 2.048 + 1e-6
    assert rst - probes[1] == pytest.approx(75.776, abs=1e-6)


def test_wheel_granularity_is_the_level_the_thresholds_put_a_delay_in():
    # R40: a delay's level is how many of LVL_START(1..7) it reaches; the compiled core compares
    # instead of bisecting, so check the comparisons against bisect at and around every threshold.
    from bisect import bisect_right

    from sim.facts.wheel import GRANULARITY_J, LEVEL_THRESHOLDS_J, wheel_fire_j, wheel_granularity_j

    delays = [0, 1, 2**31] + [t + d for t in LEVEL_THRESHOLDS_J for d in (-1, 0, 1)]
    for d in delays:
        g = GRANULARITY_J[bisect_right(LEVEL_THRESHOLDS_J, d)]
        assert wheel_granularity_j(d) == g
        assert wheel_fire_j(1234.0, d) == (1234 + d) // g * g + g
    assert [wheel_granularity_j(t) for t in LEVEL_THRESHOLDS_J] == list(GRANULARITY_J[1:])


def test_wheel_hz1000_interval_75s_is_77_824():
    h = Harness(exact=False, hz=1000, phase_j=0.0)
    h.establish((300, 75, 3))
    h.run(2000)
    probes = h.times("probe")
    assert probes[2] - probes[1] == pytest.approx(77.824, abs=1e-6)


def test_received_probe_does_not_refresh_the_receiver():
    # R12, R22: a probe (seq = snd_una - 1) fails tcp_sequence(): dupACK, and rcv_tstamp untouched,
    # so the receiver's own keepalive still fires I after its last *accepted* segment.
    from sim.model.segment import PROBE, Seg

    h = Harness()
    h.establish((300, 20, 4))
    h.sched.call_at(100.0, lambda _: h.sock.receive(Seg(PROBE, -1, 0)))
    h.run(301)
    assert h.times("ack") == pytest.approx([100.0], abs=EXACT)  # the dupACK answer
    assert h.times("probe") == pytest.approx([300.0], abs=EXACT)  # not 400


def test_data_for_a_closed_socket_is_answered_with_rst():
    # A socket whose application closed it (FIN sent) gets new data: Linux resets (TCPAbortOnData).
    from sim.model.segment import DATA, Seg

    h = Harness()
    h.establish(None)
    h.sock.close()
    h.sock.receive(Seg(DATA, 0, 0, "late request"))
    assert h.times("rst") == [0.0]


def test_so_keepalive_enabled_late_arms_at_now_plus_idle_and_twice_is_once():
    # R5 / S13: SO_KEEPALIVE=1 at 4.0 (idle since 0, I=3 V=2 C=2): KT = now + I, so the first check at
    # 7 probes at once; a second SO_KEEPALIVE=1 at 4.5 changes nothing. Probes 7, 9; RST at 11.
    h = Harness()
    h.establish(None)
    s = h.sock
    s.opts = SockOpts(False, 3, 2, 2)
    h.sched.call_at(4.0, lambda _: s.set_keepalive(True))
    h.sched.call_at(4.5, lambda _: s.set_keepalive(True))
    h.run(20)
    assert h.times("probe") == pytest.approx([7, 9], abs=EXACT)
    assert h.errors == [(pytest.approx(11, abs=EXACT), ETIMEDOUT, "keepalive")]

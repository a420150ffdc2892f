"""The handshake's timers (kernel-lifecycle.md R41–R45), from the worked examples of that document."""

from __future__ import annotations

import pytest

from sim.model.host import SockOpts
from sim.model.segment import RST, SYN, SYN_RECV, SYN_SENT, Seg
from tests.kernel_harness import Harness

SYN_KIND = str(SYN)


def _connect(sysctl=None, syncnt=0, user_timeout_ms=0, exact=True, hz=250, phase_j=0.0):
    h = Harness(peer="dead", sysctl=sysctl, exact=exact, hz=hz, phase_j=phase_j)
    h.sock.opts = SockOpts(syncnt=syncnt, user_timeout_ms=user_timeout_ms)
    h.sock.connect()
    h.run(1000)
    return h


def test_worked_example_every_syn_lost_defaults():
    """R41–R43 worked example: SYNs at 0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67 s, ETIMEDOUT at 131 s."""
    h = _connect()
    assert h.times(SYN_KIND) == [0, 1, 2, 3, 4, 5, 7, 11, 19, 35, 67]
    assert h.errors == [(131, "ETIMEDOUT", "connect_timeout")]
    assert h.sock.syns == 11


def test_pre_6_5_schedule_without_linear_timeouts():
    """tcp_syn_linear_timeouts = 0 gives the classic 0, 1, 3, 7, 15, 31, 63 and 127 s."""
    h = _connect(sysctl={"net.ipv4.tcp_syn_linear_timeouts": 0})
    assert h.times(SYN_KIND) == [0, 1, 3, 7, 15, 31, 63]
    assert h.errors[0][0] == 127


def test_syncnt_1_time_check_bites_before_the_count():
    """R43: TCP_SYNCNT=1: count limit 1 + 4 = 5, time limit (2<<1)-1 = 3 s; the time check wins."""
    h = _connect(syncnt=1)
    assert h.times(SYN_KIND) == [0, 1, 2]
    assert h.errors == [(3, "ETIMEDOUT", "connect_timeout")]


def test_syn_retries_2_time_limit_7s():
    """tcp_syn_retries=2: count 6, time (2<<2)-1 = 7 s; SYNs 0..5 then 7 s: dies at 7 s."""
    h = _connect(sysctl={"net.ipv4.tcp_syn_retries": 2})
    assert h.times(SYN_KIND) == [0, 1, 2, 3, 4, 5]
    assert h.errors[0][0] == 7


def test_user_timeout_in_syn_sent_clamps_the_rto():
    """R43: TCP_USER_TIMEOUT 2.5 s replaces the time limit, and the timer is clamped to fire at it."""
    h = _connect(user_timeout_ms=2500)
    assert h.times(SYN_KIND) == [0, 1, 2]
    assert h.errors == [(2.5, "ETIMEDOUT", "connect_timeout")]


def test_wheel_timers_fire_late_by_at_most_their_granularity():
    """R40 at HZ=250: each gap between SYNs (and to the error) is its nominal RTO, late by at most
    the wheel granularity of that RTO (at most 1/8 of it, plus a jiffy)."""
    h = _connect(exact=False, phase_j=123.0)
    nominal = [1, 1, 1, 1, 1, 2, 4, 8, 16, 32, 64]
    got = h.times(SYN_KIND) + [h.errors[0][0]]
    gaps = [b - a for a, b in zip(got, got[1:], strict=False)]
    assert len(gaps) == len(nominal)
    assert all(n <= g <= n * 1.125 + 0.004 + 1e-9 for n, g in zip(nominal, gaps, strict=True)), gaps
    assert h.errors[0][1:] == ("ETIMEDOUT", "connect_timeout")


def test_rst_to_syn_is_connection_refused():
    """R44: an RST answering the SYN gives ECONNREFUSED at once, no retransmission."""
    h = Harness(peer="dead")
    h.sock.connect()
    h.sched.call_at(0.002, h.sock.receive, Seg(RST, 0, 0))
    h.run(100)
    assert h.errors == [(0.002, "ECONNREFUSED", "connect_refused")]
    assert h.times(SYN_KIND) == [0]


def test_synack_retransmitted_doubling_then_request_dropped():
    """R45: a lost SYN-ACK is resent at 1, 3, 7, 15, 31 s (tcp_synack_retries 5), then the request
    is dropped and the listener waits again."""
    h = Harness(peer="dead")
    h.sock.listen()
    h.sock.receive(Seg(SYN, 0, 0))
    assert h.sock.state == SYN_RECV
    h.run(1000)
    assert h.times("1") == [0, 1, 3, 7, 15, 31]
    assert h.errors == []
    assert h.sock.state != SYN_SENT and h.sock.rt is not None


@pytest.mark.parametrize("retries", [0, 2])
def test_synack_retries_sysctl(retries):
    h = Harness(peer="dead", sysctl={"net.ipv4.tcp_synack_retries": retries})
    h.sock.listen()
    h.sock.receive(Seg(SYN, 0, 0))
    h.run(1000)
    assert h.times("1") == [0, 1, 3][: retries + 1]

"""The handshake and orphan rules of kernel-lifecycle.md (R41–R47) on the real kernel, case by case,
against the timelines worked out from the rules (the kernel side of ``validate --kernel``'s handshake
and close cases, sim/testbed/lifecycle.py).

Needs root, iproute2 and nftables, like tests/test_kernel_validation.py: skipped without them
outside CI, a failure in CI. The cases run in parallel and take about 10 s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from sim.config.load import load_config
from sim.facts.wheel import wheel_granularity_j
from sim.testbed.lifecycle import (
    DEATH_RESOLUTION_S,
    POLL_S,
    Replay,
    _first_connection,
    _outcome,
    _testbed_drop,
    last_timer_s,
    replay_of,
    run_sim_replay,
)
from sim.testbed.validate import detect_hz, measure_replays
from tests.test_kernel_validation import REASON, needs_kernel

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Timeline:
    """A case's timeline as the rules give it with nominal timers: ``segments`` SYNs or FINs, the
    end (ETIMEDOUT or the orphan's death) ``nominal_s`` after the first SYN or FIN. ``timers_s`` is the
    chain of timers that leads there (each fires late by up to its wheel granularity, R40);
    ``rto_units``: how many TCP_RTO_MIN (200 ms) units of the chain come from an RTO computed from the
    RTT, which the kernel rounds up to a whole jiffy (204 ms at HZ=250)."""

    replay: Replay
    outcome: str
    kind: str  # "syn" or "fin"
    segments: int
    nominal_s: float
    timers_s: tuple[float, ...]
    rto_units: int = 0

    def late_bound_s(self, hz: int) -> float:
        """How late the kernel may be: every timer's wheel granularity, the RTO's jiffy rounding, the
        orphan poll and 50 ms of wake-up."""
        wheel = sum(wheel_granularity_j(round(t * hz)) for t in self.timers_s)
        return (wheel + self.rto_units) / hz + POLL_S + 0.05


TIMELINES = {
    # R42/R43: SYNs at 0, 1, 2, 3, 4, 5 (linear phase, tcp_syn_linear_timeouts = 4), the next timer
    # (2 s) fires at 7 s: five retransmissions are fewer than retry_until + 4 = 6, but the time check
    # ((2 << 2) - 1) x 1 s = 7 s has passed: ETIMEDOUT at 7 s, 6 SYNs.
    "syn-retries": Timeline(Replay("connect", "syn", client_sysctl={"net.ipv4.tcp_syn_retries": 2}),
                            "connect_timeout", "syn", 6, 7.0, (1, 1, 1, 1, 1, 2)),
    # R43: TCP_SYNCNT 1 replaces tcp_syn_retries (6 here): time limit (2 << 1) - 1 = 3 s: SYNs at
    # 0, 1, 2, ETIMEDOUT at 3 s (not 131 s).
    "syncnt": Timeline(Replay("connect", "syn", syncnt=1), "connect_timeout", "syn", 3, 3.0, (1, 1, 1)),
    # R43: TCP_USER_TIMEOUT 2.5 s replaces the time limit, and the RTO is clamped so that the timer
    # fires at it: SYNs at 0, 1, 2, then a 0.5 s timer: ETIMEDOUT at 2.5 s.
    "user-timeout-syn-sent": Timeline(Replay("connect", "syn", user_timeout_ms=2500), "connect_timeout", "syn",
                                      3, 2.5, (1, 1, 0.5)),
    # R46/R47: the client closes after 6 s idle; the lb forgot the flow at 4 s and drops its FIN
    # (conntrack, late packets dropped). FIN at 0, its loss probe one RTO (200 ms) later, RTO
    # retransmissions at 0.4 (which sets retrans_stamp), 0.8 and 1.6 s; tcp_orphan_retries 2 allows
    # ((2 << 2) - 1) x 0.2 = 1.4 s from retrans_stamp: the timer at 3.2 s (2.8 s after it) kills the
    # orphan. 5 FINs, times from close().
    "orphan-fin": Timeline(Replay("orphan", idle_s=6, client_sysctl={"net.ipv4.tcp_orphan_retries": 2}),
                           "orphan_died", "fin", 5, 3.2, (0.2, 0.2, 0.4, 0.8, 1.6), rto_units=1 + 1 + 2 + 4 + 8),
    # the same with the FIN dropped by a fault rule instead of the forgotten flow
    "orphan-fin-fault": Timeline(Replay("orphan", "fin", client_sysctl={"net.ipv4.tcp_orphan_retries": 2}),
                                 "orphan_died", "fin", 5, 3.2, (0.2, 0.2, 0.4, 0.8, 1.6), rto_units=1 + 1 + 2 + 4 + 8),
}


@needs_kernel
def test_the_kernel_follows_the_worked_timelines():
    assert REASON is None, REASON
    hz = detect_hz()
    assert hz is not None, "cannot read CONFIG_HZ"
    cases = list(TIMELINES.values())
    measured = measure_replays([c.replay for c in cases])
    report = []
    for name, case, got in zip(TIMELINES, cases, measured, strict=True):
        count = got.syns if case.kind == "syn" else got.fins
        late = got.t_s - case.nominal_s
        fits = (got.outcome, count) == (case.outcome, case.segments) and 0 <= late <= case.late_bound_s(hz)
        report.append(f"{name}: {got} late {late:.3f} s (bound {case.late_bound_s(hz):.3f}) "
                      f"{'ok' if fits else 'WRONG'}")
    assert all(line.endswith(" ok") for line in report), "\n".join(report)


def test_outcomes_from_peer_events():
    """How the client peer's last event becomes an outcome and a time."""
    t = {"t0": 10.0, "t": 13.25}
    assert _outcome([{"event": "connect_error", "errno": "ETIMEDOUT", **t}], "")[:2] == ("connect_timeout", 3.25)
    assert _outcome([{"event": "connect_error", "errno": "ECONNREFUSED", **t}], "")[0] == "connect_refused"
    assert _outcome([{"event": "connected", **t}], "")[0] == "ok"
    died = _outcome([{"event": "connected", "t": 1.0},
                     {"event": "gone", "t_close": 2.0, "last_seen": 4.0, "states": ["fin_wait1"], "t": 4.5}], "")
    assert died == ("orphan_died", 2.5, "states fin_wait1")
    acked = _outcome([{"event": "gone", "t_close": 2.0, "states": ["fin_wait1", "fin_wait2"], "t": 2.1}], "")
    assert acked[0] == "orphan_closed"
    alive = _outcome([{"event": "end", "t_close": 2.0, "states": ["fin_wait1"], "t": 9.0}], "")
    assert alive[0] == "orphan_alive" and math.isnan(alive[1])
    assert _outcome([], "Traceback ... boom")[0] == "error"


def _scenario(*sets: str):
    return load_config(ROOT / "configs/kernel/rst-no-keepalive.yaml", list(sets)).scenario


def test_which_configs_are_handshake_or_close_cases():
    """An idle-flow case is none; a client pool idle timeout makes an orphan case, with the lb's
    conntrack timeout, its late-packet action and the client's sysctls."""
    assert replay_of(_scenario()) is None
    orphan = replay_of(_scenario("client.pool.idle_timeout=6s", "lb.late_packet=drop",
                                 "client.kernel.sysctl.net.ipv4.tcp_orphan_retries=2"))
    assert orphan == Replay("orphan", "", lb_timeout_s=4, late="drop", idle_s=6.0,
                            client_sysctl={"net.ipv4.tcp_orphan_retries": 2}, max_s=10.0)


@pytest.mark.parametrize("fault, drop", [
    ({}, "syn"),
    ({"packets": "fin"}, "fin"),
    ({"at": 1.0}, None),  # not from the start
    ({"for_": 5.0}, None),  # not to the end
    ({"direction": "both"}, None),
    ({"action": "rst"}, None),
    ({"packets": "data"}, None),
])
def test_the_testbed_replays_only_faults_that_drop_the_clients_syns_or_fins(fault, drop):
    f = SimpleNamespace(**({"at": 0.0, "for_": None, "leg": "downstream", "direction": "to_server",
                            "packets": "syn", "action": "drop"} | fault))
    if drop is None:
        with pytest.raises(ValueError, match="replays only faults"):
            _testbed_drop(f)
    else:
        assert _testbed_drop(f) == drop


def test_the_longest_timer_is_the_last_rto_of_the_chain():
    """R42: SYN RTOs stay 1 s for tcp_syn_linear_timeouts retransmissions, then double; R46: an
    orphan's FIN: a loss probe, then RTOs from 200 ms doubling."""
    sc = _scenario()
    assert [last_timer_s(Replay("connect"), sc, n) for n in (1, 3, 5, 6, 7, 11)] == [1, 1, 1, 2, 4, 64]
    assert last_timer_s(Replay("connect"), _scenario("client.kernel.sysctl.net.ipv4.tcp_syn_linear_timeouts=0"),
                        3) == 4
    assert [last_timer_s(Replay("orphan"), sc, n) for n in (2, 5)] == pytest.approx([0.2, 1.6])


def test_the_models_orphan_death_time_is_the_shortest_run_in_which_it_died():
    """The records say whether the orphan died by the end of the run, not when: run_sim_replay finds
    the shortest run (on a 0.1 ms grid) after which it has."""
    sc = load_config(ROOT / "configs/kernel/orphan-fin-blackhole.yaml", ["kernel.hz=250"]).scenario
    got = run_sim_replay(sc, replay_of(sc))
    assert (got.outcome, got.fins) == ("orphan_died", 5)
    closed = _first_connection(sc)["client_closed_at_s"]
    death = closed + got.t_s

    def died_by(t):
        return _first_connection(sc.model_copy(update={"duration": t}))["orphan_died"]

    assert died_by(death + 1e-9) and not died_by(death - DEATH_RESOLUTION_S)

"""The closed form (sim.execution.analytic) agrees with the simulator on every deterministic case."""

from __future__ import annotations

import math

import pytest

from sim.config.schema import Scenario
from sim.execution import run_one
from sim.execution.analytic import analytic, in_scope

#: exact timers: the closed form and the simulator agree to floating-point rounding
EXACT = 1e-9


def _sc(**over) -> Scenario:
    base = {"connections": 1, "duration": "2h", "kernel": {"hz": 250, "timers": "exact"},
            "network": {"one_way_delay": "1ms"}, "traffic": {"request_gap": {"fixed": "1000s"}},
            "lb": {"profile": "aws-nlb-tcp"}}
    base.update(over)
    return Scenario.model_validate(base)


CASES = {
    "no keepalive, gap under the timeout": _sc(traffic={"request_gap": {"fixed": "300s"}}),
    "no keepalive, gap over it: RST on send": _sc(traffic={"request_gap": {"fixed": "400s"}}),
    "client keepalive 300 under 350": _sc(client={"keepalive": {"idle": 300, "interval": 20, "count": 4}}),
    "client keepalive 349": _sc(client={"keepalive": {"idle": 349, "interval": 20, "count": 4}}),
    "client keepalive 360: RST on probe": _sc(client={"keepalive": {"idle": 360, "interval": 10, "count": 3}}),
    "server keepalive 300": _sc(upstream={"keepalive": {"idle": 300, "interval": 20, "count": 4}}),
    "server keepalive 360: RST on probe": _sc(upstream={"keepalive": {"idle": 360, "interval": 10, "count": 3}}),
    "envoy listener 349": _sc(envoy={"listener": {"keepalive": {"idle": 349, "interval": 20, "count": 4}}}),
    "envoy listener 350": _sc(envoy={"listener": {"keepalive": {"idle": 350, "interval": 20, "count": 4}}}),
    "blackhole, keepalive above: ETIMEDOUT": _sc(lb={"profile": "azure-lb", "idle_timeout": "240s"},
                                                 client={"keepalive": {"idle": 400, "interval": 10, "count": 3}},
                                                 traffic={"request_gap": {"fixed": "2000s"}}),
    "blackhole, no keepalive: data hangs": _sc(lb={"profile": "azure-lb", "idle_timeout": "240s"},
                                              traffic={"request_gap": {"fixed": "300s"}}),
    "blackhole, server keepalive above": _sc(lb={"profile": "azure-lb", "idle_timeout": "240s"},
                                            upstream={"keepalive": {"idle": 300, "interval": 5, "count": 2}},
                                            traffic={"request_gap": {"fixed": "2000s"}}),
    "conntrack pick-up heals": _sc(lb={"profile": "linux-conntrack", "idle_timeout": "300s"},
                                   traffic={"request_gap": {"fixed": "400s"}}),
    "interval longer than idle": _sc(client={"keepalive": {"idle": 100, "interval": 340, "count": 2}}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_analytic_agrees_with_simulator(name):
    sc = CASES[name]
    a = analytic(sc)
    assert a is not None, "case should be in the analytic scope"
    c = run_one(sc, 1).columns
    i = c["conn_id"].index(0)
    assert c["silent_drop"][i] == (not a.safe)
    assert c["min_slack_s"][i] == pytest.approx(a.min_gap_slack_s, abs=EXACT)
    if a.safe or a.outcome == "ok":
        return
    assert c[f"{a.side}_outcome"][i] == a.outcome
    assert c[f"{a.side}_detect_s"][i] == pytest.approx(a.detect_s, abs=EXACT)
    assert not math.isnan(c["drop_at_s"][i])


def test_out_of_scope_cases_fall_back():
    assert not in_scope(_sc(kernel={"hz": 250, "timers": "wheel"}))
    assert not in_scope(_sc(traffic={"request_gap": {"exponential": "10m"}}))
    assert not in_scope(_sc(client={"keepalive": {"idle": 60}}, upstream={"keepalive": {"idle": 60}}))
    assert analytic(_sc(lb={"profile": "aws-nlb-tls"})) is None

"""configs/natgw-storm.yaml (issue 16 point 5): a gateway rollout meets Cloud NAT's 64 ports per VM
held 120 s after each close. The closed form its comments state, checked with `run --json` on the
default engine and on the reference engine, for each reconnect policy it sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.cli import main
from sim.execution.seeds import replication_seed
from sim.model.storm import slot_uniforms

CFG = str(Path(__file__).resolve().parent.parent / "configs" / "natgw-storm.yaml")
VMS, SLOTS, PORTS = 10, 400, 64
AT_S, WINDOW_S = 120.0, 30.0
#: what no replacement can get per VM: 2n - M
STUCK = 2 * (SLOTS // VMS) - PORTS
ENGINES = [[], ["--reference"]]


def _run(capsys, policy: str, *extra: str) -> dict:
    assert main(["run", CFG, "--json", "--set", f"client.reconnect={policy}", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def _first_exhaustion_s(seed: int) -> float:
    """The drain that fills a VM's budget first: its (M - n)-th, from the rollout's draws."""
    u = slot_uniforms(replication_seed(seed, 0), list(range(SLOTS)))
    return min(sorted(AT_S + WINDOW_S * float(u[i]) for i in range(vm, SLOTS, VMS))[PORTS - SLOTS // VMS - 1]
               for vm in range(VMS))


@pytest.mark.parametrize("engine", ENGINES, ids=["default", "reference"])
@pytest.mark.parametrize("policy", ["{policy: next_request}", "{policy: backoff, base: 10s, cap: 2m, jitter: full}"],
                         ids=["no-backoff", "short-jitter"])
def test_without_jitter_over_the_hold_each_vm_loses_2n_minus_m_connects(capsys, engine, policy):
    """No backoff, or jitter over less than the 120 s hold: 16 connects per VM fail (160), each
    after 11 refused SYNs (1,760), every budget full; no request fails (the next one, at 300 s,
    finds every hold over)."""
    s = _run(capsys, policy, *engine)
    assert s["connect_failures"] == VMS * STUCK == 160
    # ok: two per slot client -> Envoy (the first and its replacement), and one per slot in Envoy's
    # upstream pools: every first request comes at once (ramp 0), and an HTTP/1.1 pool connection
    # carries one request at a time, so the pools open one for each; later requests reuse them
    assert s["connect_outcomes"] == {"ok": 3 * SLOTS, "connect_timeout": 160}
    assert s["failed_requests"] == 0 and s["requests"] == 3 * SLOTS
    dev = s["devices"][0]
    assert dev["name"] == "gcp-cloud-nat" and dev["connects_rejected"] == 160 * 11 == 1760
    assert dev["ports_limit"] == dev["ports_peak"] == PORTS and dev["headroom_pct"] == 0.0
    if "next_request" in policy:  # each replacement's SYN follows its drain by three hops
        assert dev["exhausted_at_s"] == pytest.approx(_first_exhaustion_s(1) + 0.003, abs=1e-6)
    else:  # each waits U(0, 10 s) first
        assert _first_exhaustion_s(1) < dev["exhausted_at_s"] < AT_S + WINDOW_S + 10.0


@pytest.mark.parametrize("engine", ENGINES, ids=["default", "reference"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_full_jitter_over_the_hold_spreads_the_replacements_past_it(capsys, engine, seed):
    """Full jitter with base 5 min: at most Binomial(40, 0.4) slots of a VM hold two ports at once
    (P(>= 24) = 0.8 % at an instant), so in these seeds no SYN is refused and no budget fills."""
    s = _run(capsys, "{policy: backoff, base: 5m, cap: 5m, jitter: full}", "--set", f"seed={seed}", *engine)
    assert s["connect_failures"] == 0 and s["connect_outcomes"] == {"ok": 3 * SLOTS}
    dev = s["devices"][0]
    assert dev["connects_rejected"] == 0 and dev["exhausted_at_s"] is None
    assert SLOTS // VMS < dev["ports_peak"] < PORTS

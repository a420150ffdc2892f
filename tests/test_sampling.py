"""Sampled fleets (``fleet: {connections, sample}``, issue 17): the sample is exactly those slots of the
full run, the figures scale to the fleet with intervals that cover the full run's values, and a
sample is refused where slots share a limit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from sim.config.validate import Source, validate_scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.execution.runner import run_scenario
from sim.execution.sampling import fleet_slots, sampling_clusters
from sim.execution.seeds import replication_seed
from sim.facts.names import CONN_ID_STRIDE


def _raw(n: int, sample=None, seed: int = 1, **extra) -> dict:
    raw = {"name": "fleet", "duration": 1800, "seed": seed,
           "fleet": {"connections": n, **({} if sample is None else {"sample": sample})},
           "traffic": {"ramp": 30, "request_gap": {"lognormal": {"median": 200, "sigma": 1.0}}},
           "lb": {"profile": "aws-nlb-tcp", "idle_timeout": 350}}
    raw.update(extra)
    return raw


def _sc(raw: dict):
    return validate_scenario(raw, Source("fleet.yaml", {}))


def test_a_sampled_slot_has_exactly_its_records_in_the_full_run():
    full, sampled = _sc(_raw(300)), _sc(_raw(300, sample=40))
    seed = replication_seed(1, 0)
    slots = fleet_slots(sampled, seed)
    assert len(slots) == 40 and list(slots) == sorted(set(slots)) and max(slots) < 300
    whole = run_one(full, seed).columns
    part = run_one(sampled, seed).columns
    keep = [i for i, cid in enumerate(whole["conn_id"]) if cid // CONN_ID_STRIDE in set(slots)]
    assert part["conn_id"] and len(part["conn_id"]) == len(keep)
    for name, values in part.items():
        assert values == [whole[name][i] for i in keep] or all(
            a == b or (a != a and b != b) for a, b in zip(values, [whole[name][i] for i in keep], strict=True)), name


def test_the_sample_is_seeded_uniform_and_sized_by_count_or_fraction():
    sc = _sc(_raw(10_000, sample=0.05))
    a, b = fleet_slots(sc, 7), fleet_slots(sc, 7)
    assert a == b and len(a) == 500
    assert fleet_slots(sc, 8) != a  # each replication samples afresh
    # uniform: every tenth of the fleet holds about a tenth of the sample
    counts = [sum(1 for s in a if k * 1000 <= s < (k + 1) * 1000) for k in range(10)]
    assert all(25 <= c <= 75 for c in counts), counts
    assert len(fleet_slots(_sc(_raw(10_000, sample=123)), 7)) == 123
    assert list(fleet_slots(_sc(_raw(50, sample=500)), 7)) == list(range(50))  # a count beyond the fleet: all


def test_a_sample_under_a_shared_flow_limit_is_refused_in_one_line():
    raw = _raw(100, sample=10, lb={"profile": "aws-nlb-tcp", "idle_timeout": 350, "max_flows": 50})
    with pytest.raises(ConfigError, match="fleet.sample: .*share state"):
        run_scenario(_sc(raw))
    done = subprocess.run([sys.executable, "-m", "sim", "run", "-"], input=json.dumps(raw), text=True,
                          capture_output=True)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "fleet.sample" in done.stderr


@pytest.mark.parametrize(("raw", "says"), [
    ({"fleet": {"connections": 10, "sample": 0}}, "fleet.sample"),
    ({"fleet": {"connections": 10, "sample": 1.0}}, "fleet.sample"),
    ({"fleet": {"connections": 10, "sample": True}}, "fleet.sample"),
    ({"fleet": {"connections": "10"}}, "fleet.connections"),
])
def test_bad_fleet_keys_are_one_clear_error(raw, says):
    with pytest.raises(ConfigError, match=says):
        _sc(raw)


#: a fleet opened over 30 s (the ramp sets the new-flow peak), and one opened over 10 minutes with
#: bursty requests (the reconnects after drops set it)
SHAPES = {"ramp": {}, "reconnects": {"traffic": {"ramp": 600, "request_gap": {"lognormal": {"median": 100,
                                                                                           "sigma": 1.5}}}}}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_figures_scale_to_the_fleet_and_the_intervals_cover_the_full_run(shape):
    """Over 20 seeds, each figure's 95 % interval from a 25 % sample covers the full run's value at
    least 16 times (a binomial(20, 0.95) falls below 17 with probability 1.6 %; the seeds are fixed)."""
    figures = ("silent_drops", "failed_requests", "new_flows", "requests", "lb_active_flows_mean",
               "lb_active_flows_peak", "new_flows_peak_per_s", "nlcu_mean", "nlcu_peak", "zombies_peak")
    covered = dict.fromkeys(figures, 0)
    for seed in range(20):
        full = run_scenario(_sc(_raw(2000, seed=seed, **SHAPES[shape])), keep_records=False).summary
        est = run_scenario(_sc(_raw(2000, sample=500, seed=seed, **SHAPES[shape])), keep_records=False).summary
        assert est["sample_fraction"] == 0.25 and est["fleet_connections"] == 2000
        assert est["observed"]["silent_drops"] * 4 == est["silent_drops"]
        assert sum(est["failure_reasons"].values()) == pytest.approx(est["failed_requests"])
        for f in figures:
            lo, hi = est[f"{f}_ci95"]
            covered[f] += lo <= full[f] <= hi
    assert all(c >= 16 for c in covered.values()), str(covered)


def test_nothing_observed_gives_the_rule_of_three_and_a_safe_verdict():
    raw = _raw(1000, sample=100, traffic={"ramp": 0, "request_gap": {"fixed": 60}})
    s = run_scenario(_sc(raw), keep_records=False).summary
    assert s["observed"]["silent_drops"] == 0 and s["silent_drops"] == 0
    assert s["silent_drops_ci95"] == [0.0, 30.0]  # 3 N / n
    assert s["expected_drops_per_day"] == 0.0
    assert s["expected_drops_per_day_ci95"] == [0.0, 30.0 * 86400 / 1800]


def test_a_sample_alone_samples_the_configs_connections_and_fleet_connections_replaces_them():
    sc = _sc({"connections": 1000, "fleet": {"sample": 0.1}})
    assert sc.connections == 1000 and sc.fleet.sample_size() == 100
    assert _sc({"connections": 5, "fleet": {"connections": 10}}).connections == 10


def test_a_sample_under_a_shared_port_budget_is_refused():
    raw = _raw(100, sample=10, lb={"profile": "aws-nat-gateway"})
    with pytest.raises(ConfigError, match="fleet.sample: .*port budget"):
        run_scenario(_sc(raw))


def _instances(n: int, sample=None, seed: int = 1) -> dict:
    """A fleet of ``n`` slots on 20 client instances behind Cloud NAT's 64 ports per VM: the slots of
    one instance share its budget, so a sample takes whole instances."""
    return _raw(n, sample, seed, lb={"profile": "gcp-cloud-nat", "ports": {"limit": 4}},
                client={"instances": 20})


def test_a_per_instance_budget_is_sampled_by_whole_instances_with_exact_records():
    full, sampled = _sc(_instances(200)), _sc(_instances(200, sample=40))
    seed = replication_seed(1, 0)
    slots = fleet_slots(sampled, seed)
    instances = {s % 20 for s in slots}
    assert len(instances) == 4 and len(slots) == 40  # 40 slots: 4 whole instances of 10
    assert all(s % 20 in instances for s in range(200) if s in set(slots))
    assert sorted(slots) == sorted(s for s in range(200) if s % 20 in instances)
    whole = run_one(full, seed).columns
    part = run_one(sampled, seed).columns
    assert any(o == "connect_timeout" for o in whole["connect_outcome"])  # the budgets do bite
    keep = [i for i, cid in enumerate(whole["conn_id"]) if cid // CONN_ID_STRIDE in set(slots)]
    for name, values in part.items():
        assert all(a == b or (a != a and b != b) for a, b in zip(values, [whole[name][i] for i in keep],
                                                                strict=True)), name


def test_a_per_instance_sample_scales_by_instances_and_covers_the_full_run():
    covered = 0
    for seed in range(10):
        full = run_scenario(_sc(_instances(400, seed=seed)), keep_records=False).summary
        est = run_scenario(_sc(_instances(400, sample=100, seed=seed)), keep_records=False).summary
        assert est["sample_fraction"] == 0.25
        assert full["connect_failures"] > 0 and est["connect_failures"] == est["observed"]["connect_failures"] * 4
        lo, hi = est["connect_failures_ci95"]
        covered += lo <= full["connect_failures"] <= hi
    assert covered >= 8


def test_a_sampled_sweep_shows_the_fleet_day_estimate_with_its_interval(tmp_path, capsys):
    from pathlib import Path

    import pandas as pd

    from sim.cli import main

    small = str(Path(__file__).with_name("sweep_small.yaml"))
    out = tmp_path / "o"
    # a tcp_proxy listener: an HTTP one pools its upstream connections, sampled by whole workers (2 here)
    code = main(["sweep", small, "--set", "connections=2000", "--set", "fleet.sample=40", "--set",
                 "envoy.listener.protocol=tcp_proxy", "--executor", "serial", "--quiet", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "drops/day [95%]" in text
    rows = pd.read_csv(out / "summary.csv")
    assert (rows["sample_fraction"] == 0.02).all() and rows["expected_drops_per_day"].notna().all()
    report = (out / "report.md").read_text()
    assert "expected_drops_per_day_ci95" in report


def test_a_pooled_fleet_is_sampled_by_whole_envoy_workers_with_exact_records():
    """The slots of an Envoy worker share its upstream pool (issue 17 point 4): a sample takes whole
    workers, whose rows (the pool connections' too) are exactly those of the full run, while a sample
    of single slots would not be: the pools couple them."""
    envoy = {"concurrency": 10}
    full, sampled = _sc(_raw(200, envoy=envoy)), _sc(_raw(200, sample=40, envoy=envoy))
    assert sampling_clusters(sampled) == 10
    seed = replication_seed(1, 0)
    slots = fleet_slots(sampled, seed)
    workers = {s % 10 for s in slots}
    assert len(workers) == 2 and sorted(slots) == sorted(s for s in range(200) if s % 10 in workers)
    whole = run_one(full, seed).columns
    part = run_one(sampled, seed).columns
    assert "upstream" in part["leg"]
    keep = [i for i, cid in enumerate(whole["conn_id"]) if cid // CONN_ID_STRIDE in set(slots)]
    for name, values in part.items():
        assert all(a == b or (a != a and b != b) for a, b in zip(values, [whole[name][i] for i in keep],
                                                                strict=True)), name
    # half the slots of those workers, the first ones: their pools miss the other half's traffic
    alone = run_one(full, seed, slots=slots[:20]).columns
    pick = [i for i, cid in enumerate(whole["conn_id"]) if cid // CONN_ID_STRIDE in set(slots[:20])]
    assert any(alone[name] != [whole[name][i] for i in pick] for name in ("conn_id", "requests"))


def test_a_sample_of_a_pooled_fleet_that_would_take_every_worker_is_refused():
    raw = _raw(100, sample=10, envoy={})  # Envoy's default concurrency: 2 workers, each half the fleet
    with pytest.raises(ConfigError, match="fleet.sample: 10 would take all 2 Envoy workers"):
        run_scenario(_sc(raw))


def test_a_sample_of_a_pooled_fleet_under_another_shared_limit_is_refused():
    raw = _raw(100, sample=10, envoy={"concurrency": 10}, lb={"profile": "linux-conntrack", "max_flows": 50})
    with pytest.raises(ConfigError, match="fleet.sample: .*Envoy's upstream pools"):
        run_scenario(_sc(raw))




def test_an_nlcu_interval_from_few_sampled_units_never_goes_below_zero():
    """The ±3/n floor of the NLCU intervals (the rule of three) spans more than the estimate when n,
    the units sampled, is below 3 (two whole Envoy workers): the low end stays at 0."""
    import numpy as np

    from sim.metrics.fleet import nlcu_intervals

    batch = {"_nlcu_new_flows": np.array([1.0, 2.0]), "_nlcu_active_flows": np.array([2.0, 2.0])}
    out = nlcu_intervals([[batch, dict(batch)]], 10.0, 2, np.random.default_rng(0))
    for field in ("nlcu_mean", "nlcu_peak"):
        lo, hi = out[field]
        assert lo == 0.0 and hi > 0.0, (field, lo, hi)

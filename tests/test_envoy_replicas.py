"""``envoy.replicas``: Envoy instances (gateway pods) behind the LB, each its own host (its own wheel
phase) with ``envoy.concurrency`` workers. Slot ``i`` is served by instance ``i % replicas`` and by
worker pool ``i % (replicas × concurrency)``; one replica is the model as before (golden records)."""

from __future__ import annotations

import pytest

from sim.config.resolve import world_spec
from sim.config.validate import Source, validate_scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.execution.sampling import fleet_slots, sampling_clusters
from sim.execution.seeds import replication_seed
from sim.facts.names import CONN_ID_STRIDE
from sim.metrics.summary import summarize_one
from sim.model.groups import packed, worker_groups
from sim.model.scenario import World
from tests.test_envoy_pools import _raw
from tests.test_shortcuts import same


def _sc(raw: dict):
    return validate_scenario(raw, Source("<test>", {}))


def test_each_replica_is_a_host_of_its_own_and_each_of_its_workers_a_pool():
    sc = _sc(_raw(12, envoy={"concurrency": 2, "replicas": 3}))
    world = World(world_spec(sc), 1)
    hosts = world.envoy_hosts
    assert len(hosts) == 3 and len({id(h) for h in hosts}) == 3
    assert len({h.clock.phase_j for h in hosts}) == 3  # each pod's wheel is its own
    s = world.slots
    assert [hosts.index(world.envoy_of(s[i])) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert world.pool_for(s[4]) is world.pool_for(s[10]) and world.pool_for(s[4]) is not world.pool_for(s[5])
    assert len(world.pools) == 6
    # one replica: the hosts draw their phases as before
    one = World(world_spec(_sc(_raw(12, envoy={"concurrency": 2}))), 1)
    assert one.envoy_hosts == [one.envoy_host] and one.envoy_host.clock.phase_j == hosts[0].clock.phase_j
    assert one.upstream_host.clock.phase_j == world.upstream_host.clock.phase_j


@pytest.mark.parametrize("value", [0, 10_001, "two"])
def test_a_bad_replica_count_is_one_line(value):
    with pytest.raises(ConfigError, match="envoy.replicas"):
        _sc(_raw(2, envoy={"replicas": value}))


def test_the_pools_of_every_replicas_workers_are_apart_so_a_world_per_group_gives_the_whole_runs_records():
    raw = _raw(16, gap=7.0, ramp=12.0, service=1.0, duration=200.0, envoy={"concurrency": 2, "replicas": 2})
    raw["envoy"]["listener"]["keepalive"] = {"idle": 30, "interval": 5, "count": 2}
    sc = _sc(raw)
    groups = worker_groups(world_spec(sc), range(16))
    assert groups == [[k + 4 * j for j in range(4)] for k in range(4)]
    assert packed(groups, 9) == [sorted(groups[0] + groups[1]), sorted(groups[2] + groups[3])]
    whole = run_one(sc, 1, chunk_slots=0)
    for chunk in (4, 9):
        grouped = run_one(sc, 1, chunk_slots=chunk)
        for name in whole.columns:
            assert same(whole.columns[name], grouped.columns[name]), name
        assert whole.counters == grouped.counters


def test_replicas_change_the_envoy_sides_timers_not_the_traffic():
    """Two replicas: the second pod's wheel phase differs, so its listener keepalive probes fire at
    other jiffies than one pod's would; the client side is the same."""
    base = _raw(4, gap=1000.0, ramp=0.0, duration=400.0, envoy={"concurrency": 1})
    base["envoy"]["listener"]["keepalive"] = {"idle": 30, "interval": 5, "count": 2}
    base["kernel"] = {"hz": 250, "timers": "wheel"}
    base["lb"] = {"profile": "aws-nlb-tcp", "idle_timeout": 60}  # its slack measures the probes' gaps
    two = {**base, "envoy": {**base["envoy"], "replicas": 2}}
    a, b = run_one(_sc(base), 3).columns, run_one(_sc(two), 3).columns
    assert a["conn_id"] == b["conn_id"] and a["requests"] == b["requests"]
    rows = [i for i, cid in enumerate(a["conn_id"]) if a["leg"][i] == "downstream"]
    odd = [i for i in rows if (a["conn_id"][i] // CONN_ID_STRIDE) % 2 == 1]
    even = [i for i in rows if (a["conn_id"][i] // CONN_ID_STRIDE) % 2 == 0]
    assert all(a["keepalive_probes"][i] == b["keepalive_probes"][i] for i in rows)
    assert [a["min_slack_s"][i] for i in even] == [b["min_slack_s"][i] for i in even]  # pod 0: the same host
    assert [a["min_slack_s"][i] for i in odd] != [b["min_slack_s"][i] for i in odd]  # pod 1: its own phase


def test_a_fleet_behind_many_gateway_pods_is_sampled_by_whole_workers():
    """With replicas, a large pooled fleet has many workers: a sample takes whole ones, exactly."""
    raw = _raw(120, gap=40.0, ramp=20.0, service=0.5, duration=300.0, envoy={"concurrency": 2, "replicas": 10})
    full = _sc(raw)
    sampled = _sc({**raw, "fleet": {"connections": 120, "sample": 24}})
    assert sampling_clusters(sampled) == 20
    seed = replication_seed(1, 0)
    slots = fleet_slots(sampled, seed)
    workers = {s % 20 for s in slots}
    assert len(workers) == 4 and sorted(slots) == sorted(s for s in range(120) if s % 20 in workers)
    whole, part = run_one(full, seed).columns, run_one(sampled, seed).columns
    keep = [i for i, cid in enumerate(whole["conn_id"]) if cid // CONN_ID_STRIDE in set(slots)]
    for name, values in part.items():
        assert same(values, [whole[name][i] for i in keep]), name


def test_a_port_budget_per_instance_on_the_upstream_leg_is_each_replicas_own():
    """upstream.lb's client instances are Envoy's: with two replicas, two budgets of 2 ports."""
    raw = _raw(6, gap=1000.0, ramp=0.0, duration=200.0, envoy={"concurrency": 1})
    raw["envoy"]["upstream"]["idle_timeout"] = 0
    raw["upstream"]["lb"] = {"profile": "azure-lb-outbound-snat", "ports": {"limit": 2, "per": "client_instance"}}
    peaks = []
    for replicas in (1, 2):
        r = {**raw, "envoy": {**raw["envoy"], "replicas": replicas}}
        sc = _sc(r)
        s = summarize_one(run_one(sc, 1), sc.duration)
        up = next(d for d in s["devices"] if d["leg"] == "upstream")
        peaks.append((up["ports_peak"], up["connects_rejected"]))
    # 6 upstream connects: one budget of 2 refuses 4 SYNs' worth; two budgets of 2 (3 slots each) fewer
    assert peaks[0][0] == peaks[1][0] == 2  # the fullest budget's peak
    assert peaks[1][1] < peaks[0][1]


def test_the_reference_engine_gives_the_same_records_with_replicas():
    from sim.spec import Shortcuts
    from tests.test_shortcuts import assert_same_run

    raw = _raw(9, gap=40.0, ramp=5.0, service=3.0, duration=400.0, envoy={"concurrency": 2, "replicas": 3},
               upstream={"max_requests_per_connection": 4, "idle_timeout": 30})
    raw["envoy"]["listener"]["keepalive"] = {"idle": 20, "interval": 5, "count": 2}
    raw["kernel"] = {"hz": 250, "timers": "wheel"}
    raw["lb"] = {"profile": "linux-conntrack", "idle_timeout": 25}
    raw["seed"] = 5
    assert_same_run(raw, Shortcuts.none())

"""Traffic classes (``traffic: [{name, share, ...}]``, issue 17 point 2): the config, each slot's class,
the ``class`` column, and each class's own traffic and client settings in the model."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.config.load import load_config
from sim.config.resolve import world_spec
from sim.config.validate import Source, validate_scenario
from sim.errors import ConfigError
from sim.execution import run_one
from sim.facts.names import CONN_ID_STRIDE
from sim.spec import Shortcuts
from sim.spec.classes import class_counts, class_slots, slot_class, slot_classes

MOBILE = {"name": "mobile", "share": 0.7, "ramp": 60, "request_gap": {"exponential": 120}}
STREAMS = {"name": "streams", "share": 0.3, "ramp": 60, "request_gap": {"fixed": 3600},
           "client": {"keepalive": {"idle": 60, "interval": 10, "count": 3}}}


def _raw(traffic, n: int = 40, **extra) -> dict:
    raw = {"name": "mix", "duration": 900, "seed": 3, "connections": n, "traffic": traffic,
           "lb": {"profile": "aws-nlb-tcp", "idle_timeout": 350}}
    raw.update(extra)
    return raw


def _sc(raw: dict):
    return validate_scenario(raw, Source("mix.yaml", {}))


# ----------------------------------------------------------------------------- slot -> class
def test_counts_are_largest_remainders_that_sum_to_the_fleet():
    assert class_counts([0.7, 0.3], 10) == (7, 3)
    assert class_counts([0.5, 0.5], 3) == (2, 1)  # a tie goes to the class listed first
    assert class_counts([0.98, 0.02], 1000) == (980, 20)
    assert sum(class_counts([1 / 3] * 3, 1001)) == 1001


def test_each_slots_class_inverts_and_every_class_is_spread_over_the_ramp():
    rnd = random.Random(5)
    for _ in range(300):
        shares = [rnd.random() + 0.01 for _ in range(rnd.randint(1, 4))]
        n = rnd.randint(1, 400)
        counts = class_counts(shares, n)
        cls = [slot_class(i, counts) for i in range(n)]
        assert list(slot_classes(np.arange(n), counts)) == cls
        for h, c in enumerate(counts):
            members = [i for i in range(n) if cls[i] == h]
            assert len(members) == c
            assert list(class_slots(h, np.arange(c), counts)) == members
    # a rare class of a large fleet: its slots sit evenly over the ramp, never in one block
    counts = class_counts([0.7, 0.28, 0.02], 10**6)
    rare = class_slots(2, np.arange(counts[2]), counts)
    assert rare[0] < 10**6 / counts[2] and rare[-1] > 10**6 - 10**6 / counts[2]
    assert np.diff(rare).max() <= 2 * 10**6 / counts[2]
    # a billion slots: no fleet in memory, the same answers
    big = class_counts([0.6, 0.39, 0.01], 10**9)
    for h in range(3):
        for s in class_slots(h, [0, 12345, big[h] - 1], big):
            assert slot_class(int(s), big) == h


# ----------------------------------------------------------------------------- config
def test_a_single_mapping_is_one_class_named_default():
    sc = _sc(_raw({"request_gap": {"fixed": 60}}))
    [only] = sc.classes()
    assert (only.name, only.share) == ("default", 1.0)
    assert set(run_one(sc, 1).columns["class"]) == {"default"}


def test_a_class_client_overrides_the_top_level_key_by_key():
    sc = _sc(_raw([MOBILE, {**STREAMS, "client": {**STREAMS["client"], "kernel": {"hz": 1000}}}],
                  client={"user_timeout": 30, "kernel": {"sysctl": {"net.ipv4.tcp_retries2": 8}}}))
    mobile, streams = sc.classes()
    assert not mobile.client.keepalive.enabled and streams.client.keepalive.idle == 60
    assert mobile.client.user_timeout == streams.client.user_timeout == 30  # not overridden: the top level's
    assert streams.client.kernel.hz == 1000 and streams.client.kernel.sysctl == {"net.ipv4.tcp_retries2": 8}
    spec = world_spec(sc)
    assert [c.name for c in spec.classes] == ["mobile", "streams"] and spec.class_counts == (28, 12)
    assert spec.classes[1].client.host.hz == 1000 and spec.classes[0].client.host.hz == 250


@pytest.mark.parametrize(("traffic", "key", "says"), [
    ([MOBILE, {**STREAMS, "share": 0.2}], "traffic", "the shares sum to 0.9"),
    ([MOBILE, {**STREAMS, "name": "mobile"}], "traffic[1].name", "class 'mobile' is already traffic[0]"),
    ([], "traffic", "an empty list of classes"),
    ([MOBILE, {**STREAMS, "share": 0}], "traffic[1].share", "is not a share of the fleet"),
    ([{**MOBILE, "share": 1.5}], "traffic[0].share", "is not a share of the fleet"),
    ([MOBILE, {**STREAMS, "client": {"instances": 4}}], "traffic[1].client.instances", "fleet-wide"),
    ([MOBILE, {**STREAMS, "client": {"reconnect": {"policy": "immediate"}}}], "traffic[1].client.reconnect",
     "fleet-wide"),
    ([MOBILE, {**STREAMS, "response_bytes": 100}], "traffic[1].response_bytes", "differs"),
    ([MOBILE, {**STREAMS, "nmae": "x"}], "traffic[1].nmae", "unknown key"),
    ([MOBILE, {k: v for k, v in STREAMS.items() if k != "share"}], "traffic[1].share", "required key is missing"),
])
def test_a_bad_list_of_classes_is_one_clear_error(traffic, key, says):
    with pytest.raises(ConfigError) as err:
        _sc(_raw(traffic))
    assert err.value.key == key and says in err.value.problem
    assert err.value.allowed or says == "required key is missing"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    return path


MIX_YAML = """name: mix
duration: 10m
connections: 20
traffic:
  - {name: mobile, share: 0.7, request_gap: {exponential: 2m}}
  - name: streams
    share: 0.2
    request_gap: {fixed: 1h}
lb: aws-nlb-tcp
"""


def test_shares_that_do_not_sum_to_one_exit_2_with_file_and_line(tmp_path):
    path = _write(tmp_path, MIX_YAML)
    out = subprocess.run([sys.executable, "-m", "sim", "run", str(path)], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip() == (f"error: {path}:4: traffic: the shares sum to 0.9 (0.7 + 0.2) (allowed: shares "
                                  "that sum to 1 (within 1e-06))")


def test_set_addresses_a_class_by_name_and_refuses_an_unnamed_traffic_key(tmp_path):
    path = _write(tmp_path, MIX_YAML.replace("share: 0.2", "share: 0.3"))
    sc = load_config(path, ["traffic.streams.request_gap={fixed: 30m}", "traffic.mobile.share=0.6",
                            "traffic.streams.share=0.4"]).scenario
    assert [(c.name, c.share, c.traffic.request_gap.fixed) for c in sc.classes()] == [
        ("mobile", 0.6, None), ("streams", 0.4, 1800.0)]
    with pytest.raises(ConfigError) as err:
        load_config(path, ["traffic.request_gap={fixed: 30m}"])
    assert "say which class" in err.value.problem
    assert err.value.allowed == "traffic.mobile.request_gap, traffic.streams.request_gap"


def test_a_sweep_axis_on_a_class_key_runs_and_one_without_a_class_is_refused_at_its_line(tmp_path):
    good = MIX_YAML.replace("share: 0.2", "share: 0.3") + "sweep:\n  traffic.streams.share: [0.3]\n" \
        "  conditions:\n    traffic.streams.request_gap: [{fixed: 30m}, {fixed: 1h}]\n"
    loaded = load_config(_write(tmp_path, good))
    assert loaded.scenario.classes()[1].share == 0.3
    bad = MIX_YAML.replace("share: 0.2", "share: 0.3") + "sweep:\n  traffic.ramp: [10s, 60s]\n"
    with pytest.raises(ConfigError) as err:
        load_config(_write(tmp_path, bad))
    assert err.value.line == 11 and "say which class" in err.value.problem


# ----------------------------------------------------------------------------- the model
def test_records_carry_each_slots_class_and_each_class_its_own_settings():
    sc = _sc(_raw([MOBILE, STREAMS]))
    cols = run_one(sc, 7).columns
    counts = class_counts([0.7, 0.3], 40)
    classes = {cid // CONN_ID_STRIDE: c for cid, c in zip(cols["conn_id"], cols["class"], strict=True)}
    assert classes == {s: ("mobile", "streams")[slot_class(s, counts)] for s in range(40)}
    probes = {name: sum(p for p, c in zip(cols["keepalive_probes"], cols["class"], strict=True) if c == name)
              for name in ("mobile", "streams")}
    assert probes["mobile"] == 0 and probes["streams"] > 0  # only the streams class turned keepalive on
    # a fixed one-hour gap in 15 minutes: each streams slot sends its first request only
    reqs = [r for r, c in zip(cols["requests"], cols["class"], strict=True) if c == "streams"]
    assert sum(reqs) == counts[1]


def test_one_named_class_simulates_exactly_as_the_single_mapping():
    single = {k: v for k, v in STREAMS.items() if k not in ("name", "share", "client")}
    a = run_one(_sc(_raw(single, client=STREAMS["client"])), 5).columns
    b = run_one(_sc(_raw([{**STREAMS, "share": 1.0}])), 5).columns
    assert set(b.pop("class")) == {"streams"} and set(a.pop("class")) == {"default"}
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == b[k] or all(x == y or (x != x and y != y) for x, y in zip(a[k], b[k], strict=True)), k


def test_classes_give_identical_records_on_the_reference_engine():
    timeouts = {**MOBILE, "client": {"request_timeout": 5}, "service_time": {"uniform": [0, 10]}}
    sc = _sc(_raw([timeouts, {**STREAMS, "requests_per_connection": 1}], n=30))
    fast = run_one(sc, 2).columns
    ref = run_one(sc, 2, shortcuts=Shortcuts.none()).columns
    assert fast.keys() == ref.keys()
    for k in fast:
        assert fast[k] == ref[k] or all(x == y or (x != x and y != y)
                                        for x, y in zip(fast[k], ref[k], strict=True)), k
    assert sum(fast["client_timeouts"]) > 0  # the mobile class's own request timeout fired


# ----------------------------------------------------------------------------- summaries
ADDITIVE = ("connections", "silent_drops", "requests", "failed_requests", "requests_in_flight_at_end",
            "hang_s_total", "zombie_s_total", "at_risk_gaps", "connect_failures", "resets", "hung")


def _drops_mix(n: int = 40, **extra) -> dict:
    """Streams idle for an hour behind a 350 s NLB (they drop) beside mobile apps that keep it fresh."""
    return _raw([{**MOBILE, "request_gap": {"uniform": [10, 120]}},
                 {**STREAMS, "client": {}, "request_gap": {"fixed": 400}}], n=n, **extra)


def test_the_summary_breaks_every_figure_down_by_class_and_the_classes_add_up():
    from sim.execution.runner import run_scenario

    sc = _sc(_drops_mix(replications=2))
    summary = run_scenario(sc).summary
    by = summary["by_class"]
    assert list(by) == ["mobile", "streams"]
    assert by["streams"]["silent_drops"] > 0 and by["mobile"]["silent_drops"] == 0
    for field in ADDITIVE:
        assert sum(by[c][field] for c in by) == pytest.approx(summary[field]), field
    assert by["streams"]["connections"] >= 2 * class_counts([0.7, 0.3], 40)[1]  # every slot, both replications
    for c in by.values():
        assert set(c["outcomes"]) <= set(summary["outcomes"])
        assert c["failure_reasons"]["reset"] == c["resets"]
    one = run_scenario(_sc(_raw({"request_gap": {"fixed": 400}}))).summary
    assert list(one["by_class"]) == ["default"]
    assert {k: one["by_class"]["default"][k] for k in ADDITIVE} == {k: one[k] for k in ADDITIVE}


def test_a_sweep_point_gives_each_class_its_figures_and_its_own_verdict(tmp_path, capsys):
    import json

    from sim.cli import main

    path = _write(tmp_path, MIX_YAML.replace("share: 0.2", "share: 0.3").replace("request_gap: {fixed: 1h}",
                                                                                   "request_gap: {fixed: 400s}")
                  .replace("{exponential: 2m}", "{uniform: [10s, 2m]}")
                  + "client: {keepalive: {interval: 10s, count: 3}}\nsweep:\n  client.keepalive.idle: [60s, 400s]\n")
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--quiet", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    safe, unsafe = points
    assert safe["by_class"]["streams"]["safe"] and safe["by_class"]["mobile"]["safe"]
    assert not unsafe["by_class"]["streams"]["safe"] and unsafe["by_class"]["streams"]["silent_drops"] > 0
    assert unsafe["by_class"]["mobile"]["safe"]  # requests every 2 min keep the mobile class's flows fresh


# ----------------------------------------------------------------------------- stratified samples
def _rare(sample=None, seed: int = 1) -> dict:
    """6,000 slots: apps with lognormal gaps, and 2 % long-idle streams behind a 350 s NLB."""
    return {"name": "rare", "duration": 1200, "seed": seed,
            "fleet": {"connections": 6000, **({} if sample is None else {"sample": sample})},
            "traffic": [{"name": "apps", "share": 0.98, "ramp": 30,
                         "request_gap": {"lognormal": {"median": 200, "sigma": 1.0}}},
                        {"name": "streams", "share": 0.02, "ramp": 30, "request_gap": {"uniform": [300, 500]}}],
            "lb": {"profile": "aws-nlb-tcp", "idle_timeout": 350}}


def test_each_class_is_sampled_apart_and_a_rare_class_gets_its_floor():
    from sim.execution.sampling import MIN_CLASS_SAMPLE, class_allocation, fleet_slots

    assert class_allocation([5880, 120], 300) == [294, MIN_CLASS_SAMPLE]  # proportional: 6; raised to the floor
    assert class_allocation([5950, 50], 300) == [298, 50]  # a class smaller than the floor: all of it
    sc = _sc(_rare(sample=300))
    slots = fleet_slots(sc, 11)
    counts = class_counts([0.98, 0.02], 6000)
    assert len(slots) == 394 and list(slots) == sorted(set(slots))
    assert list(np.bincount(slot_classes(slots, counts))) == [294, 100]
    assert fleet_slots(sc, 12) != slots  # each replication samples afresh


def test_a_stratified_sample_scales_each_class_by_its_own_weight_and_covers_the_full_run():
    """Over 8 seeds, each interval from a 300-slot sample (the rare class at its floor, 100 of 120
    slots) covers the full run's value at least 6 times (binomial(8, 0.95) falls below 6 with
    probability 0.6 %; the seeds are fixed)."""
    from sim.execution.runner import run_scenario

    figures = ("silent_drops", "streams", "apps", "zombie_s_total", "new_flows", "lb_active_flows_peak")
    covered = dict.fromkeys(figures, 0)
    for seed in range(8):
        full = run_scenario(_sc(_rare(seed=seed)), keep_records=False).summary
        assert full["by_class"]["streams"]["silent_drops"] > 0 and full["by_class"]["apps"]["silent_drops"] > 0
        est = run_scenario(_sc(_rare(sample=300, seed=seed)), keep_records=False).summary
        streams = est["by_class"]["streams"]
        assert streams["sampled_connections"] == 100 and streams["fleet_connections"] == 120
        assert est["sampled_connections"] == 394
        # the fleet total is the sum of the classes' totals, each scaled by N_h / n_h
        assert est["silent_drops"] == pytest.approx(sum(c["silent_drops"] for c in est["by_class"].values()))
        assert streams["silent_drops"] == pytest.approx(streams["observed"]["silent_drops"] * 120 / 100)
        values = {"streams": (streams["silent_drops_ci95"], full["by_class"]["streams"]["silent_drops"]),
                  "apps": (est["by_class"]["apps"]["silent_drops_ci95"], full["by_class"]["apps"]["silent_drops"]),
                  **{f: (est[f"{f}_ci95"], full[f]) for f in figures[3:] + ("silent_drops",)}}
        for f, (ci, value) in values.items():
            covered[f] += ci[0] <= value <= ci[1]
    assert all(c >= 6 for c in covered.values()), covered


def test_a_sampled_slot_has_its_class_and_exactly_its_records_of_the_full_run():
    from sim.execution.sampling import fleet_slots
    from sim.execution.seeds import replication_seed

    raw = _rare()
    raw["fleet"]["connections"] = 1500
    full = _sc(raw)
    sampled = _sc({**raw, "fleet": {"connections": 1500, "sample": 150}})
    seed = replication_seed(1, 0)
    slots = set(fleet_slots(sampled, seed))
    whole, part = run_one(full, seed).columns, run_one(sampled, seed).columns
    keep = [i for i, cid in enumerate(whole["conn_id"]) if cid // CONN_ID_STRIDE in slots]
    assert {c for c, cid in zip(part["class"], part["conn_id"], strict=True)} == {"apps", "streams"}
    for name, values in part.items():
        assert all(a == b or (a != a and b != b)
                   for a, b in zip(values, [whole[name][i] for i in keep], strict=True)), name


def test_the_verdict_table_and_the_report_show_each_class(tmp_path, capsys):
    from sim.cli import main

    path = _write(tmp_path, MIX_YAML.replace("share: 0.2", "share: 0.3").replace("request_gap: {fixed: 1h}",
                                                                                   "request_gap: {fixed: 400s}")
                  .replace("{exponential: 2m}", "{uniform: [10s, 2m]}")
                  + "client: {keepalive: {interval: 10s, count: 3}}\nsweep:\n  client.keepalive.idle: [60s, 400s]\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    table = text[text.index("by traffic class:"):].splitlines()
    assert table[1].split() == ["client.keepalive.idle", "class", "safe", "drops", "failed"]
    rows = {(r.split()[0], r.split()[1]): r.split()[2] for r in table[2:6]}
    assert rows == {("60", "mobile"): "yes", ("60", "streams"): "yes", ("400", "mobile"): "yes",
                    ("400", "streams"): "NO"}
    report = (out / "report.md").read_text()
    section = report[report.index("## By traffic class"):]
    assert "| 400 | streams | **NO** |" in section and "| 60 | mobile | yes |" in section
    one = _write(tmp_path, "name: one\nduration: 5m\nconnections: 4\nlb: aws-nlb-tcp\n"
                           "sweep:\n  client.keepalive: ['off']\n")
    assert main(["sweep", str(one), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    assert "by traffic class" not in capsys.readouterr().out  # one class: no breakdown to show
    assert "## By traffic class" not in (tmp_path / "one" / "report.md").read_text()


def test_run_prints_a_line_per_class(tmp_path, capsys):
    from sim.cli import main

    path = _write(tmp_path, MIX_YAML.replace("share: 0.2", "share: 0.3"))
    assert main(["run", str(path)]) in (0, 3)
    out = capsys.readouterr().out
    lines = [line.strip() for line in out.splitlines() if line.strip().startswith("class ")]
    assert [line.split(":")[0] for line in lines] == ["class mobile", "class streams"]
    assert "14 connections" in lines[0] and "6 connections" in lines[1]  # 70 % and 30 % of 20 slots


def test_classes_may_each_run_their_own_traffic_process(tmp_path):
    (tmp_path / "procs.py").write_text(
        "def every(env, conn, rng, period_s=60.0):\n"
        "    while True:\n"
        "        yield conn.request()\n"
        "        yield env.timeout(period_s)\n")
    path = _write(tmp_path, "name: procs\nduration: 30m\nconnections: 12\nlb: aws-nlb-tcp\ntraffic:\n"
                            "  - {name: fast, share: 0.5, ramp: 0s, process: 'procs:every', params: {period_s: 60}}\n"
                            "  - {name: slow, share: 0.25, ramp: 0s, process: 'procs:every', params: {period_s: 600}}\n"
                            "  - {name: gaps, share: 0.25, request_gap: {fixed: 100s}}\n")
    sc = load_config(path).scenario
    fast, ref = run_one(sc, 1).columns, run_one(sc, 1, shortcuts=Shortcuts.none()).columns
    assert fast == ref or all(fast[k] == ref[k] or all(x == y or (x != x and y != y)
                                                       for x, y in zip(fast[k], ref[k], strict=True)) for k in fast)
    per_class = {}
    for c, r in zip(fast["class"], fast["requests"], strict=True):
        per_class[c] = per_class.get(c, 0) + r
    # one environment drives both processes: 30 and 3 requests per slot, and the gap slots 18 each
    assert per_class == {"fast": 6 * 30, "slow": 3 * 3, "gaps": 3 * 18}


def test_the_predicted_margin_is_the_worst_classs():
    from sim.report.verdict import predicted_margin_s

    client = {"keepalive": {"idle": 60, "interval": 10, "count": 3}}
    alike = _sc(_raw([MOBILE, {**STREAMS, "client": {}}], client=client))
    late = _sc(_raw([MOBILE, {**STREAMS, "client": {"keepalive": {"idle": 340, "interval": 10, "count": 3}}}],
                    client=client))
    bare = _sc(_raw([MOBILE, {**STREAMS, "client": {"keepalive": False}}], client=client))
    assert predicted_margin_s(alike) == predicted_margin_s(_sc(_raw({}, client=client))) > 250
    assert predicted_margin_s(late) < 10  # the streams class probes only after 340 s
    assert predicted_margin_s(bare) is None  # a class with nothing probing: its safety depends on its traffic


def test_row_totals_of_chunks_merged_give_each_classs_figures_of_the_whole_run():
    """A fleet split in chunks (run --executor dask) folds each chunk's rows apart and merges the
    totals: every class's figures are those of the whole run, whether a chunk holds one class or
    several, and wherever a second class first shows up."""
    from sim.metrics.summary import summarize_one, summary_from
    from sim.metrics.totals import RowTotals
    from sim.model.scenario import merge
    from tests.test_shortcuts import same

    sc = _sc(_drops_mix(n=40))
    whole = run_one(sc, 5)
    expected = summarize_one(whole, sc.duration)["by_class"]
    assert sorted(expected) == ["mobile", "streams"] and expected["streams"]["silent_drops"] > 0
    # slot ranges of one class and of both, in orders where the second class comes first and last
    for pieces in ([range(0, 3), range(3, 40)], [range(0, 40, 2), range(1, 40, 2)], [range(39, 40), range(0, 39)]):
        parts = [run_one(sc, 5, slots=p) for p in pieces]
        totals = RowTotals()
        for part in parts:
            totals.merge(RowTotals().add(part.columns))
        merged = merge(parts)
        got = summary_from(totals, merged.counters, merged.series, sc.duration)["by_class"]
        assert list(got) == list(expected)
        for name, figures in expected.items():
            want = dict(figures)
            assert sorted(got[name].pop("_detects")) == sorted(want.pop("_detects"))
            assert same(got[name], want), name

"""Device figures by traffic class (issue 17 point 2): what the middleboxes count (keepalive packets,
new flows, LB RSTs, bytes, flows, NLCU) is kept per class, attributed flow by flow, on every path that
makes a summary: one world (shared state too), chunks merged, processes, the Dask executor, sampled
fleets, replications combined, and the sweep's report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.config.load import load_config
from sim.execution import run_one
from sim.facts.names import CONN_ID_STRIDE
from sim.metrics.capacity import CAPACITY_FIELDS
from sim.metrics.summary import summarize_one
from tests.test_shortcuts import same

MIX = str(Path(__file__).parents[1] / "configs" / "fleet-mix.yaml")
#: 60 slots for 40 minutes: the streams class (idle 30 to 90 min) drops flows, every class probes
SMALL = ["connections=60", "duration=40m", "envoy.listener.keepalive.idle=400s"]
#: the classes' device counts add up to the fleet's, exactly
COUNTS = ("keepalive_packets", "new_flows", "lb_rsts")
#: a class's device figures (besides its rows'), as ``by_class`` carries them
DEVICE = ("keepalive_packets", "keepalive_pps", "new_flows", "lb_rsts", *CAPACITY_FIELDS)
#: the shapes: slots independent (Envoy tcp_proxy), Envoy's pooled upstream leg through an NLB of
#: its own, and a flow table too small for the fleet (shared state: one world)
SHAPES = {
    "tcp_proxy": ["envoy.listener.protocol=tcp_proxy"],
    "pooled": ["upstream.lb=aws-nlb-tcp", "upstream.lb.idle_timeout=350s"],
    "flow_limit": ["envoy.listener.protocol=tcp_proxy", "lb.max_flows=45", "lb.on_full=rst"],
}


def _sc(shape: str, *more: str):
    return load_config(MIX, [*SMALL, *SHAPES[shape], *more]).scenario


def _class_slots(rec, name: str) -> list[int]:
    return sorted({cid // CONN_ID_STRIDE for cid, c in zip(rec.columns["conn_id"], rec.columns["class"], strict=True)
                   if c == name})


def _device_view(by_class: dict) -> dict:
    return {name: {k: f[k] for k in DEVICE} for name, f in by_class.items()}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_each_classs_device_counts_add_up_to_the_fleets(shape):
    sc = _sc(shape)
    rec = run_one(sc, 7)
    s = summarize_one(rec, sc.duration)
    by = s["by_class"]
    assert sorted(by) == ["batch", "streams", "web"]
    for k in COUNTS:
        assert sum(f[k] for f in by.values()) == s[k], k
    for dev in rec.series["devices"]:  # per device too
        assert sorted(dev["classes"]) == ["batch", "streams", "web"]
        for k in COUNTS + ("ping_packets",):
            assert sum(c[k] for c in dev["classes"].values()) == dev[k], (dev["name"], k)
        assert sum(len(c["intervals"]) for c in dev["classes"].values()) == len(dev["intervals"])
    # batch's own 10 s keepalive probes; the others' flows expire (Envoy probes after 400 s) and the NLB
    # answers their late packets with RSTs
    assert by["batch"]["keepalive_packets"] > 0 and all(f["new_flows"] > 0 for f in by.values())
    assert by["streams"]["lb_rsts"] > 0 and by["web"]["lb_rsts"] > 0
    if shape == "pooled":
        assert [d["leg"] for d in rec.series["devices"]] == ["downstream", "upstream"]
        assert sum(c["new_flows"] for c in rec.series["devices"][1]["classes"].values()) > 0
    if shape == "flow_limit":
        assert s["devices"][0]["connects_rejected"] > 0  # the table filled up


@pytest.mark.parametrize("shape", ["tcp_proxy", "pooled"])
def test_a_classs_device_figures_are_those_of_its_slots_run_alone(shape):
    """Slots independent: a class's figures are those its slots make without the others. A pooled
    upstream leg shares connections between slots of one worker, whatever their class (and a response
    may come a little later without the others' connections), so there only the client's leg's counts
    are compared."""
    sc = _sc(shape)
    rec = run_one(sc, 7)
    by = summarize_one(rec, sc.duration)["by_class"]
    for name in by:
        alone = run_one(sc, 7, slots=_class_slots(rec, name))
        s = summarize_one(alone, sc.duration)
        if shape == "tcp_proxy":
            want = {k: s[k] for k in DEVICE}
            assert same({k: by[name][k] for k in DEVICE}, want), name
        dev, mine = alone.series["devices"][0], rec.series["devices"][0]["classes"][name]
        assert (dev["keepalive_packets"], dev["new_flows"], dev["lb_rsts"]) == (
            mine["keepalive_packets"], mine["new_flows"], mine["lb_rsts"]), name
    assert by["batch"]["keepalive_pps"] > 0 and by["web"]["nlcu_mean"] > by["batch"]["nlcu_mean"] > 0


@pytest.mark.parametrize("shape", ["tcp_proxy", "pooled"])
def test_chunks_merged_and_processes_give_each_classs_device_figures_of_one_world(shape):
    from sim.execution.runner import run_split

    sc = _sc(shape)
    whole = _device_view(summarize_one(run_one(sc, 7, chunk_slots=0), sc.duration)["by_class"])
    chunked = _device_view(summarize_one(run_one(sc, 7, chunk_slots=7), sc.duration)["by_class"])
    split = _device_view(summarize_one(run_split(sc, 7, 2), sc.duration)["by_class"])
    assert same(chunked, whole) and same(split, whole)


def test_the_dask_executor_gives_each_classs_device_figures_of_the_serial_run(monkeypatch):
    from sim.execution.dask_run import run_on_dask
    from sim.execution.runner import run_scenario
    from tests.test_dask_run import _serially

    _serially(monkeypatch)
    sc = _sc("tcp_proxy", "replications=2")
    serial = run_scenario(sc, keep_records=False).summary["by_class"]
    dask = run_on_dask(sc, chunk_slots=9).summary["by_class"]
    assert same(_device_view(dask), _device_view(serial))


def test_a_dask_run_on_a_local_cluster_breaks_device_figures_down_by_class(capsys):
    pytest.importorskip("dask.distributed")
    from sim.cli import main

    assert main(["run", MIX, *[a for s in SMALL + SHAPES["tcp_proxy"] for a in ("--set", s)], "--json"]) == 0
    serial = json.loads(capsys.readouterr().out)["by_class"]
    assert main(["run", MIX, *[a for s in SMALL + SHAPES["tcp_proxy"] for a in ("--set", s)], "--executor", "dask",
                 "--workers", "2", "--json", "--quiet"]) == 0
    dask = json.loads(capsys.readouterr().out)["by_class"]
    assert same(_device_view(dask), _device_view(serial))
    assert serial["batch"]["keepalive_pps"] > 0


def test_replications_combine_each_classs_device_figures():
    from sim.execution.runner import run_scenario

    sc = _sc("tcp_proxy", "replications=2")
    s = run_scenario(sc, keep_records=False).summary
    for k in COUNTS:
        assert sum(f[k] for f in s["by_class"].values()) == s[k], k
    assert sum(f["keepalive_pps"] for f in s["by_class"].values()) == pytest.approx(s["keepalive_pps"])


def _rare(sample=None, seed: int = 1) -> dict:
    """3,000 slots: apps with lognormal gaps, 5 % long-idle streams behind a 350 s NLB."""
    return {"name": "rare", "duration": 1200, "seed": seed,
            "fleet": {"connections": 3000, **({} if sample is None else {"sample": sample})},
            "traffic": [{"name": "apps", "share": 0.95, "ramp": 30,
                         "request_gap": {"lognormal": {"median": 200, "sigma": 1.0}}},
                        {"name": "streams", "share": 0.05, "ramp": 30, "request_gap": {"uniform": [300, 500]},
                         "client": {"keepalive": {"idle": 60, "interval": 10, "count": 3}}}],
            "lb": {"profile": "aws-nlb-tcp", "idle_timeout": 350}}


def test_a_stratified_sample_scales_each_classs_device_figures_by_its_stratum():
    from sim.config.validate import Source, validate_scenario
    from sim.execution.runner import run_scenario

    sc = validate_scenario(_rare(sample=300), Source("rare.yaml", {}))
    est = run_scenario(sc, keep_records=False).summary
    by = est["by_class"]
    for k in ("keepalive_packets", "new_flows", "lb_rsts", "keepalive_pps", "lb_bytes_per_s", "new_flows_per_s"):
        assert sum(f[k] for f in by.values()) == pytest.approx(est[k]), k
        for f in by.values():
            ci = f[f"{k}_ci95"]
            assert ci is not None and ci[0] <= f[k] <= ci[1], k
    streams = by["streams"]
    assert streams["keepalive_packets"] > 0
    assert streams["keepalive_packets"] == pytest.approx(streams["observed"]["keepalive_packets"] * 150 / 100)
    for k in ("nlcu_mean", "lb_active_flows_peak", "new_flows_peak_per_s"):
        assert by["apps"][k] > 0 and f"{k}_ci95" in by["apps"], k


def test_run_json_and_the_sweep_report_show_each_classs_keepalive_pps_and_new_flows(tmp_path, capsys):
    from sim.cli import main

    sets = [a for s in SMALL + ["connections=30"] for a in ("--set", s)]
    assert main(["run", MIX, *sets, "--json"]) == 0
    by = json.loads(capsys.readouterr().out)["by_class"]
    assert by["batch"]["keepalive_pps"] > 0 and all(by[c]["new_flows"] > 0 for c in by)
    assert main(["run", MIX, *sets]) in (0, 3)
    lines = [line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("class ")]
    assert len(lines) == 3 and all("keepalive pkt/s" in line and "new flows" in line for line in lines)
    assert main(["sweep", MIX, *sets, "--set", "sweep={envoy.listener.keepalive.idle: [60s, 400s]}", "--out",
                 str(tmp_path / "out"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "keepalive pps" in text[text.index("by traffic class"):]
    report = (tmp_path / "out" / "report.md").read_text()
    section = report[report.index("## By traffic class"):]
    head = next(line for line in section.splitlines() if line.startswith("| envoy.listener.keepalive.idle"))
    assert "keepalive_pps" in head and "new_flows" in head and "nlcu_mean" in head


def test_a_dask_chunk_hands_back_each_classs_flows_as_an_array(monkeypatch):
    """The client's memory stays bounded: a chunk's flows leave as arrays, each class's too."""
    import numpy as np

    import sim.execution.dask_run as dr

    seen = []

    def spy(fn, tasks, executor, workers, scheduler):
        for task in tasks:
            res = fn(task)
            for dev in res.rec.series["devices"]:
                seen.extend(isinstance(c["intervals"], np.ndarray) for c in dev["classes"].values())
            yield task, res, ""

    monkeypatch.setattr(dr, "run_all", spy)
    dr.run_on_dask(_sc("tcp_proxy", "connections=20"), workers=2, chunk_slots=10)
    assert len(seen) >= 2 * 3 and all(seen)  # two chunks or more, three classes each


def test_a_sample_of_whole_instances_scales_each_classs_device_figures_by_the_fleets_weight():
    """Whole client instances are sampled (a per-instance port budget): not stratified by class. Each
    class's additive device figures are scaled by instances / instances sampled with an interval from
    its part of each batch; its peaks and NLCU are scaled without one."""
    from sim.config.validate import Source, validate_scenario
    from sim.execution.runner import run_scenario

    raw = {**_rare(sample=100), "fleet": {"connections": 400, "sample": 100}, "client": {"instances": 20},
           "lb": {"profile": "gcp-cloud-nat", "ports": {"limit": 4}}}
    raw["traffic"] = [{**raw["traffic"][0], "share": 0.7}, {**raw["traffic"][1], "share": 0.3}]
    est = run_scenario(validate_scenario(raw, Source("inst.yaml", {})), keep_records=False).summary
    assert est["sample_fraction"] == 0.25
    by = est["by_class"]
    assert sorted(by) == ["apps", "streams"]
    for k in ("keepalive_packets", "new_flows", "lb_rsts", "keepalive_pps"):
        assert sum(f[k] for f in by.values()) == pytest.approx(est[k]), k
        assert all(f[f"{k}_ci95"] is not None for f in by.values()), k
    for f in by.values():
        assert f["new_flows"] == f["observed"]["new_flows"] * 4
        assert f["lb_active_flows_peak"] == f["observed"]["lb_active_flows_peak"] * 4 > 0
        assert "lb_active_flows_peak_ci95" not in f and "new_flows_peak_per_s_ci95" not in f
    # a class no sampled instance runs: the other is still one class of two, not the fleet
    raw["traffic"] = _rare()["traffic"]
    est = run_scenario(validate_scenario(raw, Source("inst.yaml", {})), keep_records=False).summary
    assert list(est["by_class"]) == ["apps"] and "lb_active_flows_peak_ci95" not in est["by_class"]["apps"]

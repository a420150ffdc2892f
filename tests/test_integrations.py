"""``inspect`` and ``recommend`` (issue 6): the seed's artefacts, round trips, parser edge cases and
bad input. Commands are called through an argparse parser built here with ``add_parsers``, so these
tests do not depend on sim.cli."""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from sim.errors import ConfigError
from sim.integrations.commands import add_parsers, cmd_inspect, cmd_recommend
from sim.integrations.inspect import Settings, hop_effective, inspect, max_safe_idle
from sim.integrations.parse import parse_ms_timer, parse_text

FIX = Path(__file__).parent / "fixtures" / "integrations"
EF_HEAD = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\n"
DR_HEAD = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\n"
NLB_MARGIN_300_HZ250 = 350 - (300 + 16.384 + 2 * 0.001)  # predicted margin: I + g(I) + 2 x 1 hop x 1 ms


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Dispatch like the CLI does: ConfigError → one line on stderr and exit code 2."""
    parser = argparse.ArgumentParser(prog="python -m sim")
    add_parsers(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    try:
        rc = {"inspect": cmd_inspect, "recommend": cmd_recommend}[args.cmd](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        rc = 2
    out = capsys.readouterr()
    return rc, out.out, out.err


def inspect_json(path: Path | str, capsys: pytest.CaptureFixture, *extra: str) -> dict:
    rc, out, err = run(["inspect", str(path), "--json", *extra], capsys)
    assert rc == 0, err
    return json.loads(out)


def listener(rep: dict, name: str) -> dict:
    return next(h for h in rep["hops"] if h["side"] == "listener" and h["name"] == name)


# ----------------------------------------------------------------------------- Done-when: the seed
@pytest.mark.parametrize("fixture", ["seed_envoyfilter.yaml", "seed_config_dump.json", "seed_config_dump_excerpt.txt"])
def test_seed_artefacts_report_300_20_4_on_listener_8080_and_safe_vs_nlb(fixture, capsys):
    rep = inspect_json(FIX / fixture, capsys, "--lb", "aws-nlb-tcp")
    hop = listener(rep, "0.0.0.0_8080")
    ka = hop["keepalive"]
    assert (ka["enabled"], ka["idle"], ka["interval"], ka["count"]) == (True, 300, 20, 4)
    assert ka["fallbacks"] == []
    assert hop["port"] == 8080
    v = hop["verdict"]
    assert v["safe"] is True
    assert v["margin_s"] == pytest.approx(NLB_MARGIN_300_HZ250)
    assert v["lateness_s"] == pytest.approx(16.384)
    assert v["other_hz"] == 1000 and v["other_margin_s"] == pytest.approx(350 - 300 - 32.768 - 0.002)
    assert v["max_safe_idle_s"] == {"250": 333, "1000": 317}
    # the options are named from the uapi tables
    assert [o["option"] for o in hop["socket_options"]] == [
        "SOL_SOCKET/SO_KEEPALIVE", "SOL_TCP/TCP_KEEPIDLE", "SOL_TCP/TCP_KEEPINTVL", "SOL_TCP/TCP_KEEPCNT"]


def test_seed_envoyfilter_text_report(capsys):
    rc, out, _ = run(["inspect", str(FIX / "seed_envoyfilter.yaml"), "--lb", "aws-nlb-tcp"], capsys)
    assert rc == 0
    out = " ".join(out.split())  # long lines are wrapped
    assert "listener 0.0.0.0_8080 (port 8080, context GATEWAY)" in out
    assert "effective keepalive: on, 300/20/4" in out
    assert "SAFE, margin 33.614 s" in out
    assert "timer-wheel caveat" in out and "16.384 s for 300 s at HZ=250" in out
    assert "listener 0.0.0.0_8080: keepalive 300/20/4, SAFE vs aws-nlb-tcp (margin 33.614 s)" in out
    assert "envoy #18107" in out  # the listening-socket trap
    assert "line 20" in out  # options carry their YAML line


def test_seed_config_dump_numbers_are_strings_and_the_excerpt_is_repaired(capsys):
    rep = inspect_json(FIX / "seed_config_dump_excerpt.txt", capsys)
    assert any("pasted excerpt" in n for n in rep["notes"])
    opts = listener(rep, "0.0.0.0_8080")["socket_options"]
    assert [(o["level"], o["name"], o["value"]) for o in opts] == [(1, 9, 1), (6, 4, 300), (6, 5, 20), (6, 6, 4)]
    full = inspect_json(FIX / "seed_config_dump.json", capsys)
    assert listener(full, "0.0.0.0_8080")["listener_state"] == "active"
    health = next(h for h in full["hops"] if h["port"] == 15021)
    assert health["keepalive"]["enabled"] is False and health["socket_options"] is None
    assert any("istio #32289" in w for w in full["warnings"])


def test_seed_ss_three_connections_in_keepalive(capsys):
    rep = inspect_json(FIX / "seed_ss.txt", capsys, "--lb", "aws-nlb-tcp")
    conns = rep["connections"]
    assert len(conns) == 3
    assert all(c["state"] == "ESTAB" and c["timer"] == "keepalive" and c["protected"] for c in conns)
    assert [c["left_s"] for c in conns] == [288, 275, 293]
    assert [c["count"] for c in conns] == [0, 0, 0]
    s = rep["summary"]
    assert (s["established"], s["keepalive"], s["without_timer"]) == (3, 3, 0)
    assert (s["left_min_text"], s["left_max_text"]) == ("4min35sec", "4min53sec")
    assert s["lb"]["unsafe_connections"] == 0 and s["lb"]["max_safe_idle_s"] == 333
    rc, out, _ = run(["inspect", str(FIX / "seed_ss.txt")], capsys)
    assert rc == 0
    assert "3 of 3 established connection(s) in keepalive" in out
    assert "time left 4min35sec-4min53sec (275-293 s)" in out


# ----------------------------------------------------------------------------- Done-when: recommend
def _fake_results(tmp_path: Path, idle: int = 310) -> Path:
    """A results folder as `sweep configs/nlb.yaml` leaves it (only sweep.json is read)."""
    out = tmp_path / "results"
    out.mkdir()
    meta = {"knobs": ["envoy.listener.keepalive.idle"], "conditions": ["kernel.hz"],
            "recommended": {"params": {"envoy.listener.keepalive.idle": idle}, "safe": True, "silent_drops": 0,
                            "min_slack_s": 7.25, "predicted_margin_s": 7.23, "ka_pps_per_1000": 4.75},
            "config_file": "configs/nlb.yaml", "sets": []}
    (out / "sweep.json").write_text(json.dumps(meta))
    return out


def test_recommend_envoyfilter_round_trips_through_inspect(tmp_path, capsys):
    results = _fake_results(tmp_path)
    rc, out, err = run(["recommend", "configs/nlb.yaml", "--emit", "envoyfilter", "--results", str(results)], capsys)
    assert rc == 0, err
    doc = yaml.safe_load(out)
    assert doc["kind"] == "EnvoyFilter" and doc["apiVersion"] == "networking.istio.io/v1alpha3"
    patch = doc["spec"]["configPatches"][0]
    assert patch["applyTo"] == "LISTENER"
    assert patch["match"]["listener"] == {"name": "0.0.0.0_8080", "portNumber": 8080}
    assert "from " + str(results / "sweep.json") in out.replace("\n# ", " ")
    emitted = tmp_path / "emitted.yaml"
    emitted.write_text(out)
    rep = inspect_json(emitted, capsys, "--lb", "aws-nlb-tcp")
    ka = listener(rep, "0.0.0.0_8080")["keepalive"]
    assert (ka["enabled"], ka["idle"], ka["interval"], ka["count"], ka["fallbacks"]) == (True, 310, 20, 4, [])
    # the config's own keepalive with the recommendation applied: 300/20/4 → 310/20/4
    from sim.config.load import load_config, with_values

    sc = with_values(load_config("configs/nlb.yaml"), {"envoy.listener.keepalive.idle": 310})
    own = sc.envoy.listener.keepalive
    assert (own.idle, own.interval, own.count) == (ka["idle"], ka["interval"], ka["count"])


def test_recommend_uses_the_real_sweep_results_when_present(tmp_path, capsys):
    meta = Path("results/nlb/sweep.json")
    if not meta.exists():
        pytest.skip("no results/nlb/sweep.json (run `python -m sim sweep configs/nlb.yaml`)")
    rec = json.loads(meta.read_text())["recommended"]
    rc, out, err = run(["recommend", "configs/nlb.yaml", "--emit", "envoyfilter"], capsys)
    assert rc == 0, err
    emitted = tmp_path / "ef.yaml"
    emitted.write_text(out)
    rep = inspect_json(emitted, capsys)
    assert listener(rep, "0.0.0.0_8080")["keepalive"]["idle"] == rec["params"]["envoy.listener.keepalive.idle"]


def test_recommend_listener_and_port_options(tmp_path, capsys):
    results = _fake_results(tmp_path)
    rc, out, _ = run(["recommend", "configs/nlb.yaml", "--emit", "envoyfilter", "--results", str(results),
                      "--listener", "0.0.0.0_8443", "--port", "8443", "--namespace", "ingress"], capsys)
    assert rc == 0
    doc = yaml.safe_load(out)
    assert doc["metadata"]["namespace"] == "ingress"
    assert doc["spec"]["configPatches"][0]["match"]["listener"] == {"name": "0.0.0.0_8443", "portNumber": 8443}
    rc, _, err = run(["recommend", "configs/nlb.yaml", "--emit", "envoyfilter", "--results", str(results),
                      "--port", "70000"], capsys)
    assert rc == 2 and "--port" in err


@pytest.mark.parametrize("kind", ["sysctl", "all"])
def test_every_emitted_manifest_round_trips(kind, tmp_path, capsys):
    results = _fake_results(tmp_path)
    rc, out, err = run(["recommend", "configs/nlb.yaml", "--emit", kind, "--results", str(results)], capsys)
    assert rc == 0, err
    path = tmp_path / "emitted"
    path.write_text(out)
    rep = inspect_json(path, capsys)
    if kind == "sysctl":
        ka = rep["netns"]["keepalive"]
        assert (ka["idle"], ka["interval"], ka["count"]) == (310, 20, 4)
        return
    docs = [d for d in yaml.safe_load_all(out) if d]
    triples = {(h["side"], h["keepalive"]["triple"]) for h in rep["hops"]}
    # nlb.yaml sweeps the listener only: no DestinationRule (Envoy's upstream keepalive stays off;
    # tests/test_recommend.py covers a sweep of both hops)
    assert [d["kind"] for d in docs] == ["EnvoyFilter"]
    assert triples == {("listener", "310/20/4")}
    assert "# net.ipv4.tcp_keepalive_time = 310" in out  # sysctls as comments keep it valid YAML


def test_recommend_runs_a_quick_sweep_without_results(tmp_path, capsys):
    cfg = tmp_path / "small.yaml"
    shutil.copy(Path(__file__).with_name("sweep_small.yaml"), cfg)
    rc, out, err = run(["recommend", str(cfg), "--emit", "envoyfilter", "--executor", "serial",
                        "--results", str(tmp_path / "none")], capsys)
    assert rc == 0, err
    assert "quick sweep" in err and "a quick internal sweep (1 replication)" in out
    path = tmp_path / "ef.yaml"
    path.write_text(out)
    ka = listener(inspect_json(path, capsys), "0.0.0.0_8080")["keepalive"]
    assert (ka["idle"], ka["interval"], ka["count"]) == (300, 20, 4)  # 345 s is unsafe at HZ=1000


def test_recommend_without_envoy_emits_the_server_setting_with_a_warning(tmp_path, capsys):
    cfg = tmp_path / "sql.yaml"
    cfg.write_text("name: sql\nduration: 20m\nconnections: 4\nlb: aws-nlb-tcp\n"
                   "traffic: {request_gap: {fixed: 1m}, service_time: {fixed: 0s}}\n"
                   "upstream: {keepalive: {idle: 120s, interval: 10s, count: 3}}\n"
                   "sweep: {upstream.keepalive.idle: [120s]}\n")
    rc, out, err = run(["recommend", str(cfg), "--emit", "all", "--executor", "serial",
                        "--results", str(tmp_path / "none")], capsys)
    assert rc == 0, err
    assert "keepalive for the upstream server sockets: 120/10/3" in out.replace("\n# ", " ")
    assert "no envoyfilter: the config has no Envoy" in out.replace("\n# ", " ")
    assert [d for d in yaml.safe_load_all(out) if d] == []  # sysctls only, as comments


# ----------------------------------------------------------------------------- print_ms_timer
@pytest.mark.parametrize("text,seconds,resolution", [
    ("4min48sec", 288.0, 1.0),
    ("4min35sec", 275.0, 1.0),
    ("4min", 240.0, 1.0),
    ("1min5sec", 65.0, 1.0),
    ("10min", 600.0, 60.0),  # minutes > 9: the seconds are dropped
    ("119min", 7140.0, 60.0),
    ("12sec", 12.0, 1.0),  # seconds > 9: the milliseconds are dropped
    ("5sec", 5.0, 0.001),
    ("1.988ms", 1.988, 0.001),  # iproute2 < 6.11: means 1.988 s
    ("1.988sec", 1.988, 0.001),  # iproute2 >= 6.11
    ("088ms", 0.088, 0.001),
    ("120ms", 0.12, 0.001),
    ("", 0.0, 0.001),  # overdue: waiting for its wheel bucket
])
def test_parse_ms_timer(text, seconds, resolution):
    got, res = parse_ms_timer(text)
    assert got == pytest.approx(seconds)
    assert res == resolution


@pytest.mark.parametrize("text", ["abc", "1.98ms", "5.123", "088sec", "1min5.123ms", "4min48", "-3sec", "1h"])
def test_parse_ms_timer_rejects_what_ss_cannot_print(text):
    with pytest.raises(ValueError):
        parse_ms_timer(text)


def test_ss_new_iproute_forms_and_states(capsys):
    rep = inspect_json(FIX / "ss_new_iproute.txt", capsys, "--lb", "aws-nlb-tcp")
    by_line = {c["line"]: c for c in rep["connections"]}
    assert by_line[2]["state"] == "LISTEN" and by_line[2]["timer"] is None
    assert by_line[3]["left_s"] == pytest.approx(1.988)
    assert by_line[4]["timer_text"] == "" and by_line[4]["left_s"] == 0.0
    assert by_line[5]["left_s"] == pytest.approx(0.088) and by_line[5]["count"] == 2
    assert by_line[6]["timer"] == "on" and by_line[6]["protected"] is None
    assert by_line[7]["left_s"] == 7140 and "UNSAFE" in by_line[7]["status"]
    assert by_line[8]["protected"] is False
    assert by_line[9]["state"] == "TIME-WAIT"
    s = rep["summary"]
    assert (s["established"], s["keepalive"], s["without_timer"], s["hidden"]) == (6, 4, 1, 1)
    # the ESTAB connection without a timer is unprotected: it counts against the verdict too
    assert (s["lb"]["unsafe_connections"], s["lb"]["over_armed_connections"], s["lb"]["unprotected_connections"]) \
        == (2, 1, 1)
    assert s["lb"]["safe"] is False


def test_old_iproute_ms_means_seconds_and_continuation_lines():
    text = ("State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
            "ESTAB 0      0      10.0.0.1:8080      10.0.0.2:5000\n"
            "\t timer:(keepalive,1.988ms,0) uid:0 ino:1 sk:1 <->\n")
    p = parse_text(text, "old.txt")
    assert len(p.conns) == 1 and p.conns[0].left_s == pytest.approx(1.988)
    rep = inspect(p, Settings())
    assert any("1.988ms for 1.988 s" in w for w in rep["warnings"])


def test_ss_state_filter_hides_the_state_column():
    text = ("Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n"
            "0      0      10.0.0.1:8080      10.0.0.2:5000 timer:(keepalive,2min28sec,0)\n")
    p = parse_text(text, "filtered.txt")
    assert p.kind == "ss" and p.conns[0].left_s == 148


# ----------------------------------------------------------------------------- other inputs
def test_destinationrule_is_upstream_only_and_subset_pool_replaces_keepalive(capsys):
    rep = inspect_json(FIX / "destinationrule.yaml", capsys)
    top, sub = rep["hops"]
    assert top["side"] == "cluster" and top["keepalive"]["triple"] == "240/30/3"
    assert sub["name"].endswith("subset v2") and sub["keepalive"]["enabled"] is False
    assert any("upstream connections only" in w for w in rep["warnings"])
    assert any("replaces the top-level one" in w for w in rep["warnings"])


def test_cluster_config_dump_tcp_keepalive_and_fallbacks(capsys):
    rep = inspect_json(FIX / "cluster_config_dump.json", capsys)
    hops = {h["name"]: h for h in rep["hops"]}
    assert hops["outbound|8080||backend.default.svc.cluster.local"]["keepalive"]["triple"] == "240/30/3"
    xds = hops["xds-grpc"]["keepalive"]
    assert (xds["idle"], xds["interval"], xds["count"], xds["fallbacks"]) == (300, 75, 9, ["interval", "count"])
    assert "net.ipv4.tcp_keepalive_intvl = 75 (kernel default)" in xds["sources"]["interval"]
    assert hops["BlackHoleCluster"]["keepalive"]["enabled"] is False
    assert any("per netns" in w for w in rep["warnings"])


def test_config_dump_with_string_numbers_everywhere():
    dump = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
                         "dynamic_active_clusters": [{"cluster": {
                             "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", "name": "c",
                             "upstream_connection_options": {"tcp_keepalive": {
                                 "keepalive_time": "120", "keepalive_interval": "10", "keepalive_probes": "3"}}}}]},
                        {"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
                         "dynamic_listeners": [{"name": "l", "active_state": {"listener": {
                             "name": "l", "address": {"socket_address": {"address": "0.0.0.0", "port_value": "9000"}},
                             "socket_options": [{"level": "1", "name": "9", "int_value": "1"},
                                                {"level": "6", "name": "18", "int_value": "30000"}]}}}]}]}
    p = parse_text(json.dumps(dump), "dump.json")
    cluster = next(h for h in p.hops if h.side == "cluster")
    lst = next(h for h in p.hops if h.side == "listener")
    assert hop_effective(cluster).triple == "120/10/3"
    eff = hop_effective(lst)
    assert lst.port == 9000 and eff.enabled and eff.user_timeout_ms == 30000
    assert eff.triple == "7200/75/9" and eff.fallbacks == ["idle", "interval", "count"]


def test_envoyfilter_without_socket_options_is_keepalive_off(capsys, tmp_path):
    f = tmp_path / "ef.yaml"
    f.write_text("apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: idle}\n"
                 "spec:\n  configPatches:\n  - applyTo: LISTENER\n    match: {context: GATEWAY, listener: "
                 "{portNumber: 8080}}\n    patch:\n      operation: MERGE\n      value:\n"
                 "        per_connection_buffer_limit_bytes: 32768\n"
                 "  - applyTo: HTTP_FILTER\n    patch: {operation: INSERT_BEFORE, value: {name: x}}\n")
    rep = inspect_json(f, capsys, "--lb", "aws-nlb-tcp")
    hop = rep["hops"][0]
    assert hop["name"] == "port 8080" and hop["socket_options"] is None
    assert hop["keepalive"]["enabled"] is False
    assert hop["verdict"]["safe"] is False and "no keepalive" in hop["verdict"]["reason"]
    assert any("no socket_options" in w for w in rep["warnings"])
    assert any("HTTP_FILTER x1" in n for n in rep["notes"])


def test_envoyfilter_keepidle_without_so_keepalive_and_sidecar_outbound(tmp_path):
    text = (EF_HEAD + "metadata: {name: x}\nspec:\n  configPatches:\n  - applyTo: LISTENER\n"
            "    match: {context: SIDECAR_OUTBOUND}\n    patch:\n      operation: MERGE\n      value:\n"
            "        socket_options:\n        - {level: 6, name: 4, int_value: 60, state: STATE_LISTENING}\n")
    p = parse_text(text, "x.yaml")
    rep = inspect(p, Settings())
    assert rep["hops"][0]["keepalive"]["enabled"] is False
    assert any("stored but never used" in w for w in rep["warnings"])
    assert any("SIDECAR_OUTBOUND" in w for w in rep["warnings"])


def test_sysctl_lines_and_the_netns_trap(capsys):
    rep = inspect_json(FIX / "sysctl.txt", capsys, "--lb", "aws-nlb-tcp", "--hz", "1000")
    ka = rep["netns"]["keepalive"]
    assert ka["triple"] == "300/30/5"
    assert rep["netns"]["sysctl"]["net.ipv4.tcp_retries2"] == {"value": 8, "line": 6}
    assert rep["netns"]["verdict"]["margin_s"] == pytest.approx(350 - 300 - 32.768 - 0.002)
    assert any("per network namespace" in w for w in rep["warnings"])
    assert any("SO_KEEPALIVE" in w for w in rep["warnings"])


def test_proc_sys_lines_are_sysctl_lines():
    p = parse_text("/proc/sys/net/ipv4/tcp_keepalive_time:600\n/proc/sys/net/ipv4/tcp_keepalive_probes:0\n", "p")
    assert p.kind == "sysctl" and p.sysctl["net.ipv4.tcp_keepalive_time"][0] == 600
    rep = inspect(p, Settings())
    assert any("R4" in w for w in rep["warnings"])


def test_stdin_input(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO((FIX / "seed_ss.txt").read_text()))
    rc, out, _ = run(["inspect", "-"], capsys)
    assert rc == 0 and out.startswith("<stdin>: ss output: 3 socket(s)")


def test_max_safe_idle_matches_the_sweep_thresholds():
    # README: the first unsafe idle is 335 s at HZ=250 and 320 s at HZ=1000 for the 350 s NLB
    assert max_safe_idle("aws-nlb-tcp", 250, 0.001) == 333
    assert max_safe_idle("aws-nlb-tcp", 1000, 0.001) == 317


# ----------------------------------------------------------------------------- bad input: exit 2
@pytest.mark.parametrize("content,expect", [
    ("", "empty input"),
    ("just some words\nand more words\n", "not an input inspect reads"),
    ("apiVersion: v1\nkind: ConfigMap\n", "'ConfigMap' is not an input inspect reads"),
    ("{\"configs\": []}", "no Envoy listener or cluster found"),
    ("key: [unclosed\n", "not a recognised input"),
    ("ESTAB 0 0 1.1.1.1:1 2.2.2.2:2 timer:(keepalive,4min48,0)\n", "timer"),
    ("ESTAB 0 0 1.1.1.1:1 2.2.2.2:2\nnot an ss line\n", "not an ss socket line"),
    ("net.ipv4.tcp_keepalive_time = 0\n", "rejected by the kernel"),
    (EF_HEAD + "spec:\n  configPatches:\n  - applyTo: LISTENER\n    patch:\n      value:\n"
     "        socket_options:\n        - {level: 6, name: 4, int_value: 40000}\n", "EINVAL"),
    (EF_HEAD + "spec:\n  configPatches:\n  - applyTo: LISTENER\n    patch:\n      value:\n"
     "        socket_options:\n        - {level: 6, name: 4, int_value: abc}\n", "Failed to parse int_value"),
    (DR_HEAD + "spec:\n  host: x\n  trafficPolicy:\n    connectionPool:\n      tcp:\n"
     "        tcpKeepalive: {time: 1d}\n", "'1d' is not a Go duration: unknown unit 'd'"),
])
def test_bad_or_unrecognised_files_exit_2_with_what_was_expected(content, expect, tmp_path, capsys):
    f = tmp_path / "input"
    f.write_text(content)
    rc, out, err = run(["inspect", str(f)], capsys)
    assert rc == 2 and out == ""
    assert expect in err
    assert err.startswith(f"error: {f}")
    assert len(err.strip().splitlines()) == 1


def test_not_a_manifest_fixture_and_other_unreadables(tmp_path, capsys):
    rc, _, err = run(["inspect", str(FIX / "not_a_manifest.yaml")], capsys)
    assert rc == 2 and "not_a_manifest.yaml:2: kind: 'Service' is not an input inspect reads (allowed:" in err
    assert "EnvoyFilter" in err and "config_dump" in err and "ss -nte" in err
    rc, _, err = run(["inspect", str(tmp_path / "missing.yaml")], capsys)
    assert rc == 2 and "cannot read" in err
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00abc")
    rc, _, err = run(["inspect", str(binary)], capsys)
    assert rc == 2 and "not UTF-8" in err
    rc, _, err = run(["inspect", "configs/nlb.yaml"], capsys)
    assert rc == 2 and "sim scenario config" in err


def test_bad_options_exit_2(capsys):
    rc, _, err = run(["inspect", str(FIX / "seed_ss.txt"), "--lb", "aws-nlb"], capsys)
    assert rc == 2 and "did you mean 'aws-nlb-tcp'" in err
    rc, _, err = run(["inspect", str(FIX / "seed_ss.txt"), "--one-way-delay", "fast"], capsys)
    assert rc == 2 and "--one-way-delay" in err
    with pytest.raises(SystemExit) as exc:
        run(["recommend", "configs/nlb.yaml", "--emit", "yaml"], capsys)
    assert exc.value.code == 2


def test_recommend_with_no_safe_setting_exits_2(tmp_path, capsys):
    out = _fake_results(tmp_path)
    meta = json.loads((out / "sweep.json").read_text())
    meta["recommended"] = None
    (out / "sweep.json").write_text(json.dumps(meta))
    rc, _, err = run(["recommend", "configs/nlb.yaml", "--emit", "sysctl", "--results", str(out)], capsys)
    assert rc == 2 and "none of the swept settings is safe" in err

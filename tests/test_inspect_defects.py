"""``inspect`` defects found by users and by fuzzing (issue: 29 real artefacts). Each test failed
before its fix. Inputs written inline here are synthetic (the real artefacts are in
test_inspect_artifacts.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.integrations.inspect import Settings, inspect
from sim.integrations.parse import parse_text
from tests.test_integrations import run

EF = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: ef}\n"
DR = "apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: dr}\n"


def report(text: str, **kw) -> dict:
    return inspect(parse_text(text, "in.yaml"), Settings(**kw))


def write(tmp_path: Path, text: str, name: str = "input") -> str:
    f = tmp_path / name
    f.write_text(text)
    return str(f)


def one_error(tmp_path: Path, capsys, text: str, *extra: str) -> str:
    rc, out, err = run(["inspect", write(tmp_path, text), *extra], capsys)
    assert rc == 2 and out == "", (rc, out, err)
    assert len(err.strip().splitlines()) == 1, err
    return err


# ----------------------------------------------------------------------------- 1: camelCase
ISTIOCTL_CAMEL = json.dumps([{
    "name": "0.0.0.0_8080",
    "address": {"socketAddress": {"address": "0.0.0.0", "portValue": 8080}},
    "socketOptions": [
        {"description": "enable keep-alive", "level": "1", "name": "9", "intValue": "1", "state": "STATE_LISTENING"},
        {"level": "6", "name": "4", "intValue": "300", "state": "STATE_LISTENING"},
        {"level": "6", "name": "5", "intValue": "20", "state": "STATE_LISTENING"},
        {"level": "6", "name": "6", "intValue": "4", "state": "STATE_LISTENING"}],
    "filterChains": [{}]},
    {"name": "outbound|80||backend", "connectTimeout": "10s",
     "upstreamConnectionOptions": {"tcpKeepalive": {"keepaliveTime": 240, "keepaliveInterval": "30"}}}], indent=1)


def test_istioctl_camelcase_listener_and_cluster_are_read():
    rep = report(ISTIOCTL_CAMEL)
    lst, cl = rep["hops"]
    assert (lst["port"], lst["keepalive"]["enabled"], lst["keepalive"]["triple"]) == (8080, True, "300/20/4")
    assert [o["state"] for o in lst["socket_options"]] == ["STATE_LISTENING"] * 4
    assert cl["keepalive"]["enabled"] and (cl["keepalive"]["idle"], cl["keepalive"]["interval"]) == (240, 30)


def test_camelcase_envoyfilter_patch_values_keep_their_lines(tmp_path, capsys):
    text = (EF + "spec:\n  configPatches:\n  - applyTo: LISTENER\n    match: {context: GATEWAY, listener: "
            "{portNumber: 8080}}\n    patch:\n      operation: MERGE\n      value:\n        socketOptions:\n"
            "        - {level: 1, name: 9, intValue: 1}\n        - {level: 6, name: 4, intValue: 0}\n")
    err = one_error(tmp_path, capsys, text)
    assert ":13: spec.configPatches[0].patch.value.socketOptions[1].intValue: TCP_KEEPIDLE 0" in err
    ok = report(text.replace("intValue: 0", "intValue: 60"))
    assert ok["hops"][0]["keepalive"]["enabled"] and ok["hops"][0]["keepalive"]["idle"] == 60


def test_both_spellings_of_one_field_is_an_error(tmp_path, capsys):
    text = json.dumps([{"name": "l", "address": {"socket_address": {"port_value": 1}},
                        "socket_options": [], "socketOptions": []}])
    assert "same field, given twice" in one_error(tmp_path, capsys, text)


# ----------------------------------------------------------------------------- 2: several patches
MULTI = (EF + "spec:\n  workloadSelector: {labels: {istio: ingressgateway}}\n  configPatches:\n"
         "  - applyTo: LISTENER\n    match: {context: GATEWAY, listener: {name: 0.0.0.0_8443, portNumber: 8443}}\n"
         "    patch:\n      operation: MERGE\n      value:\n        per_connection_buffer_limit_bytes: 32768\n"
         "  - applyTo: LISTENER\n    match: {context: GATEWAY, listener: {portNumber: 8443}}\n"
         "    patch:\n      operation: MERGE\n      value:\n        socket_options:\n"
         "        - {level: 1, name: 9, int_value: 1, state: STATE_PREBIND}\n"
         "        - {level: 6, name: 4, int_value: 200, state: STATE_PREBIND}\n"
         "  - applyTo: LISTENER\n    match: {context: GATEWAY, listener: {name: 0.0.0.0_8443}}\n"
         "    patch:\n      operation: MERGE\n      value:\n        socket_options:\n"
         "        - {level: 6, name: 4, int_value: 120, state: STATE_PREBIND}\n"
         "  - applyTo: CLUSTER\n    match: {context: GATEWAY, cluster: {service: backend.default.svc.cluster.local}}\n"
         "    patch:\n      operation: MERGE\n      value:\n"
         "        circuit_breakers: {thresholds: [{max_connections: 10}]}\n")


def test_patches_on_one_listener_are_merged_into_one_hop(capsys, tmp_path):
    rep = report(MULTI, lb="aws-nlb-tcp")
    assert [h["name"] for h in rep["hops"]] == ["0.0.0.0_8443"]
    hop = rep["hops"][0]
    # socket_options lists are appended in patch order; the later TCP_KEEPIDLE wins
    assert [(o["name"], o["value"]) for o in hop["socket_options"]] == [(9, 1), (4, 200), (4, 120)]
    assert hop["keepalive"]["enabled"] and hop["keepalive"]["idle"] == 120 and hop["verdict"]["safe"]
    assert "configPatches[0], configPatches[1], configPatches[2]" in hop["source"]
    assert any("CLUSTER patch configPatches[3]" in n and "not a keepalive hop" in n for n in rep["notes"])
    rc, out, _ = run(["inspect", write(tmp_path, MULTI), "--lb", "aws-nlb-tcp"], capsys)
    assert rc == 0 and "UNSAFE" not in out


def test_merge_and_replace_list_replaces_the_socket_options():
    text = MULTI.replace("operation: MERGE\n      value:\n        socket_options:\n        - {level: 6, name: 4, "
                         "int_value: 120", "operation: MERGE_AND_REPLACE_LIST\n      value:\n        socket_options:\n"
                         "        - {level: 6, name: 4, int_value: 120")
    hop = report(text)["hops"][0]
    assert [(o["name"], o["value"]) for o in hop["socket_options"]] == [(4, 120)]
    assert hop["keepalive"]["enabled"] is False


def test_envoyfilters_selecting_the_same_proxies_merge_in_priority_order():
    a = (EF.replace("name: ef", "name: late") + "spec:\n  priority: 10\n  configPatches:\n  - applyTo: LISTENER\n"
         "    match: {context: GATEWAY, listener: {portNumber: 8080}}\n    patch:\n      operation: MERGE\n"
         "      value: {socket_options: [{level: 6, name: 4, int_value: 100}]}\n")
    b = (EF.replace("name: ef", "name: early") + "spec:\n  configPatches:\n  - applyTo: LISTENER\n"
         "    match: {context: GATEWAY, listener: {portNumber: 8080}}\n    patch:\n      operation: MERGE\n"
         "      value: {socket_options: [{level: 1, name: 9, int_value: 1}, {level: 6, name: 4, int_value: 200}]}\n")
    hop, = report(a + "---\n" + b)["hops"]
    assert hop["keepalive"]["idle"] == 100  # priority 10 applies after priority 0
    assert hop["source"].startswith("EnvoyFilter early")


# ----------------------------------------------------------------------------- 3: numeric states
@pytest.mark.parametrize("state,name", [(0, "STATE_PREBIND"), (1, "STATE_BOUND"), (2, "STATE_LISTENING"),
                                        ("STATE_BOUND", "STATE_BOUND")])
def test_numeric_socket_states_are_accepted(state, name):
    text = json.dumps({"socket_options": [{"level": 1, "name": 9, "int_value": 1, "state": state}]})
    hop, = report(text)["hops"]
    assert hop["socket_options"][0]["state"] == name and hop["keepalive"]["enabled"]


def test_an_undefined_state_number_is_an_error(tmp_path, capsys):
    err = one_error(tmp_path, capsys, json.dumps({"socket_options": [{"level": 1, "name": 9, "state": 7}]}))
    assert "7 is not a socket state" in err and "0 or STATE_PREBIND" in err


# ----------------------------------------------------------------------------- 4: Helm leftovers
def test_helm_leftover_is_one_line_naming_it(tmp_path, capsys):
    text = EF + "  namespace: {{ .Values.namespace }}\nspec:\n  configPatches: []\n"
    err = one_error(tmp_path, capsys, text)
    assert ":4: Helm template leftover '{{ .Values.namespace }}'" in err and "helm template" in err
    err = one_error(tmp_path, capsys, EF + "spec:\n  configPatches:\n  {{- toYaml .Values.patches | nindent 4 }}\n")
    assert ":6: Helm template leftover" in err


# ----------------------------------------------------------------------------- 5: prompts, heredocs
@pytest.mark.parametrize("prompt", ["[root@node1 ~]# ", "root@istio-ingressgateway-7d9f:/# ", "bash-5.1$ ", "$ ", ""])
def test_prompts_and_bare_command_lines_are_stripped(prompt):
    text = (f"{prompt}sysctl net.ipv4.tcp_keepalive_time net.ipv4.tcp_keepalive_intvl\n"
            "net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_intvl = 60\n")
    p = parse_text(text, "paste")
    assert p.kind == "sysctl" and p.sysctl["net.ipv4.tcp_keepalive_time"] == (600, 2)


def test_heredoc_and_fences_and_other_commands_output(tmp_path, capsys):
    text = ("```console\n"
            "[root@bastion ~]# ipvsadm -Ln\n"
            "IP Virtual Server version 1.2.1 (size=4096)\n"
            "TCP  10.96.0.1:443 rr\n"
            "[root@bastion ~]# kubectl apply -f - <<EOF\n"
            + EF + "spec:\n  configPatches:\n  - applyTo: LISTENER\n    match: {context: GATEWAY}\n"
            "    patch:\n      operation: MERGE\n      value:\n        socket_options:\n"
            "        - {level: 1, name: 9, int_value: 1}\n        - {level: 6, name: 4, int_value: 60}\n"
            "EOF\n"
            "envoyfilter.networking.istio.io/ef created\n"
            "```\n")
    rep = inspect_json(tmp_path, capsys, text)
    hop, = rep["hops"]
    assert hop["keepalive"]["idle"] == 60 and hop["socket_options"][1]["line"] == 18
    assert any("skipped lines 3-4: the output of `ipvsadm -Ln`" in n for n in rep["notes"])
    assert any("line 20" in n and "kubectl apply" in n for n in rep["notes"])


def inspect_json(tmp_path: Path, capsys, text: str, *extra: str) -> dict:
    rc, out, err = run(["inspect", write(tmp_path, text), "--json", *extra], capsys)
    assert rc == 0, err
    return json.loads(out)


# ----------------------------------------------------------------------------- 6: ss without timer
SS_MIXED = ("State Recv-Q Send-Q Local Address:Port Peer Address:Port\n"
            "ESTAB 0 0 10.0.0.1:8080 10.0.0.2:5000 timer:(keepalive,2min,0)\n"
            "ESTAB 0 0 10.0.0.1:8080 10.0.0.3:5001\n"
            "ESTAB 0 0 10.0.0.1:8080 10.0.0.4:5002\n"
            "TIME-WAIT 0 0 10.0.0.1:8080 10.0.0.5:5003 timer:(timewait,30sec,0)\n")


def test_ss_connections_without_a_timer_make_the_verdict_unsafe(tmp_path, capsys):
    rep = inspect_json(tmp_path, capsys, SS_MIXED, "--lb", "aws-nlb-tcp")
    lb = rep["summary"]["lb"]
    assert (lb["safe"], lb["unprotected_connections"], lb["over_armed_connections"]) == (False, 2, 0)
    rc, out, _ = run(["inspect", write(tmp_path, SS_MIXED), "--lb", "aws-nlb-tcp"], capsys)
    assert "UNSAFE: 2 ESTAB connection(s) have no keepalive timer (unprotected)" in " ".join(out.split())


# ----------------------------------------------------------------------------- 7: Go durations
@pytest.mark.parametrize("text,ns", [("1m15s", 75 * 10**9), ("1500ms", 15 * 10**8), ("0.5m", 30 * 10**9),
                                     ("1h2m3.5s", 3723 * 10**9 + 5 * 10**8), ("300us", 300_000), ("0", 0)])
def test_go_durations(text, ns):
    from sim.integrations.godur import parse_go_duration

    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["1d", "300", "", "1 m", "5 s", "ms"])
def test_go_rejects(text):
    from sim.integrations.godur import parse_go_duration

    with pytest.raises(ValueError):
        parse_go_duration(text)


def dr(time_: str, interval: str = "75s") -> str:
    return (DR + "spec:\n  host: db\n  trafficPolicy:\n    connectionPool:\n      tcp:\n        tcpKeepalive:\n"
            f"          time: {time_}\n          interval: {interval}\n")


def test_destinationrule_go_durations_truncate_to_whole_seconds():
    k = report(dr("1m15s", "1500ms"))["hops"][0]["keepalive"]
    assert (k["idle"], k["interval"]) == (75, 1)
    k = report(dr("1h2m3.5s", "0.5m"))["hops"][0]["keepalive"]
    assert (k["idle"], k["interval"]) == (3723, 30)


def test_a_duration_that_truncates_to_zero_is_a_warning_on_the_hop(tmp_path, capsys):
    rep = inspect_json(tmp_path, capsys, dr("500ms"), "--upstream-lb", "aws-nlb-tcp")
    hop, = rep["hops"]
    assert "EINVAL" in hop["broken"] and "every connection of this cluster fails" in hop["broken"]
    assert hop["verdict"]["safe"] is False and "connections fail" in hop["verdict"]["reason"]
    assert any("500ms" in w for w in rep["warnings"])


@pytest.mark.parametrize("value,expect", [("1d", "'1d' is not a Go duration"), ("300", "300 is not a duration string"),
                                          ("300 s", "missing unit"),
                                          ("300us", "must be a valid duration greater than 1ms"),
                                          ("1.0005s", "only durations to ms precision")])
def test_destinationrule_bad_durations_exit_2(value, expect, tmp_path, capsys):
    err = one_error(tmp_path, capsys, dr(value))
    assert expect in err and ":10: spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time" in err


# ----------------------------------------------------------------------------- 8: bind config, user timeout
def test_upstream_bind_config_socket_options_and_user_timeout(tmp_path, capsys):
    dump = {"name": "outbound|5432||db", "connect_timeout": "10s",
            "upstream_connection_options": {"tcp_keepalive": {"keepalive_time": 600}},
            "upstream_bind_config": {"source_address": {"address": "0.0.0.0", "port_value": 0}, "socket_options": [
                {"level": 6, "name": 4, "int_value": 120}, {"level": 6, "name": 18, "int_value": 30000}]}}
    rep = inspect_json(tmp_path, capsys, json.dumps(dump))
    k = rep["hops"][0]["keepalive"]
    assert (k["enabled"], k["idle"], k["user_timeout_ms"]) == (True, 120, 30000)  # bind options apply last
    rc, out, _ = run(["inspect", write(tmp_path, json.dumps(dump))], capsys)
    assert "TCP_USER_TIMEOUT 30000 ms" in out and "upstream_bind_config socket options:" in out


def test_user_timeout_is_shown_on_every_hop(capsys):
    rep = report(json.dumps({"socket_options": [{"level": 6, "name": 18, "int_value": 20000}]}))
    assert rep["hops"][0]["keepalive"]["user_timeout_ms"] == 20000


# ----------------------------------------------------------------------------- 9: mesh-wide keepalive
ISTIO_OP = ("apiVersion: install.istio.io/v1alpha1\nkind: IstioOperator\nmetadata: {name: control-plane}\n"
            "spec:\n  meshConfig:\n    tcpKeepalive:\n      time: 300s\n      interval: 30s\n      probes: 3\n")


def test_mesh_wide_keepalive_applies_first_then_destinationrules():
    rep = report(ISTIO_OP + "---\n" + dr("120s").replace("          interval: 75s\n", ""))
    dr_hop, other = rep["hops"]
    k = dr_hop["keepalive"]
    assert k["triple"] == "120/30/3"
    assert "DestinationRule dr" in k["sources"]["idle"] and "meshConfig.tcpKeepalive.interval" in \
        k["sources"]["interval"]
    assert other["name"] == "every upstream cluster without a DestinationRule" and \
        other["keepalive"]["triple"] == "300/30/3"


def test_mesh_configmap_lines_map_into_the_file():
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |-\n"
            "    accessLogFile: /dev/stdout\n    tcpKeepalive:\n      time: 300us\n      interval: 75s\n")
    hop, = report(text)["hops"]
    assert hop["broken"] and "time 300us" in hop["broken"]  # not CRD-validated: truncates to 0
    assert hop["keepalive"]["sources"]["interval"].endswith("line 9")


# ----------------------------------------------------------------------------- 10: minor
def test_duplicate_sysctl_keys_warn_naming_both_lines():
    rep = report("net.ipv4.tcp_keepalive_time = 600\nnet.ipv4.tcp_keepalive_time = 300\n")
    assert rep["netns"]["keepalive"]["idle"] == 300
    assert any("set twice (600 then 300), on lines 1 and 2" in w for w in rep["warnings"])


NETSTAT = ("Active Internet connections (w/o servers)\n"
           "Proto Recv-Q Send-Q Local Address           Foreign Address         State       PID/Program name   "
           "  Timer\n"
           "tcp        0      0 10.1.2.3:8080           10.1.9.9:41000          ESTABLISHED 1/envoy      "
           "keepalive (7179.89/0/0)\n"
           "tcp        0      0 10.1.2.3:8080           10.1.9.8:41002          ESTABLISHEDoff (0.00/0/0)\n")


def test_netstat_timers_are_read(tmp_path, capsys):
    rep = inspect_json(tmp_path, capsys, NETSTAT, "--lb", "aws-nlb-tcp")
    a, b = rep["connections"]
    assert (a["timer"], a["left_s"], b["timer"], b["protected"]) == ("keepalive", 7179.89, None, False)
    assert rep["summary"]["lb"]["safe"] is False


def test_netstat_without_timers_is_a_clear_error(tmp_path, capsys):
    err = one_error(tmp_path, capsys, "tcp 0 0 10.1.2.3:8080 10.1.9.9:41000 ESTABLISHED\n")
    assert "without the timer column" in err and "netstat -tnop" in err


def test_no_empty_summary_header(capsys):
    from sim.integrations.inspect import render_text
    text = json.dumps({"configs": [{"dynamic_listeners": [{"active_state": {"listener": {
        "name": "x", "address": {"socket_address": {"port_value": 1}}, "filter_chains": []}}}]}]})
    out = render_text(report(text))
    assert "summary:" not in out


def test_lb_verdicts_only_for_the_hops_on_its_leg(tmp_path, capsys):
    rep = inspect_json(tmp_path, capsys, dr("120s"), "--lb", "aws-nlb-tcp")
    assert rep["hops"][0]["verdict"] is None
    assert any("--upstream-lb" in n for n in rep["notes"])
    rep = inspect_json(tmp_path, capsys, dr("120s"), "--upstream-lb", "aws-nlb-tcp")
    assert rep["hops"][0]["verdict"]["safe"] is True


def test_envoyfilter_without_apiversion_exits_2(tmp_path, capsys):
    err = one_error(tmp_path, capsys, "kind: EnvoyFilter\nmetadata: {name: x}\nspec: {configPatches: []}\n")
    assert ":1: apiVersion: EnvoyFilter without apiVersion: kubectl rejects it" in err


def test_json_mode_errors_are_json_on_stdout(tmp_path, capsys):
    rc, out, err = run(["inspect", write(tmp_path, dr("1d")), "--json"], capsys)
    assert rc == 2 and err.startswith("error:")
    e = json.loads(out)["error"]
    assert (e["line"], e["key"]) == (10, "spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time")
    assert "not a Go duration" in e["problem"] and "units" in e["allowed"]


# ----------------------------------------------------------------------------- 11: --fail-on-unsafe
def test_fail_on_unsafe_exits_3(tmp_path, capsys):
    f = write(tmp_path, SS_MIXED)
    rc, _, err = run(["inspect", f, "--lb", "aws-nlb-tcp", "--fail-on-unsafe"], capsys)
    assert rc == 3 and "UNSAFE" in err
    rc, _, _ = run(["inspect", f, "--lb", "aws-nlb-tcp"], capsys)
    assert rc == 0
    rc, _, _ = run(["inspect", str(Path(__file__).parent / "fixtures/integrations/seed_envoyfilter.yaml"), "--lb",
                    "aws-nlb-tcp", "--fail-on-unsafe"], capsys)
    assert rc == 0


# ----------------------------------------------------------------------------- 12: hostile input
def test_deep_json_is_one_line(tmp_path, capsys):
    assert "nested deeper than" in one_error(tmp_path, capsys, "[" * 100000)


@pytest.mark.parametrize("timer", ["timer:(keepalive,garbage,0)", "timer:(keepalive,4min,x)", "timer:(keepalive,1min)",
                                   "timer:(keep-alive,1min,0)"])
def test_malformed_ss_timer_is_never_no_timer(timer, tmp_path, capsys):
    err = one_error(tmp_path, capsys, f"ESTAB 0 0 1.1.1.1:1 2.2.2.2:2 {timer}\n")
    assert "timer" in err


def test_alias_bomb_is_refused_quickly(tmp_path, capsys):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    # refused by yamlio's expansion limit before the 10**10 values are built (no timing claim here)
    err = one_error(tmp_path, capsys, "\n".join(lines) + "\n")
    assert "alias bomb" in err


# ----------------------------------------------------------------------------- 13: the JSON shape
def test_json_hop_shape(tmp_path, capsys):
    rep = inspect_json(tmp_path, capsys, MULTI, "--lb", "aws-nlb-tcp")
    hop = rep["hops"][0]
    assert {"side", "name", "port", "keepalive", "verdict"} <= set(hop)
    assert {"enabled", "idle", "interval", "count", "user_timeout_ms"} <= set(hop["keepalive"])
    assert (hop["side"], hop["name"], hop["port"]) == ("listener", "0.0.0.0_8443", 8443)


# ----------------------------------------------------------------------------- found by fuzzing the fixes
def test_remove_ends_the_patches_of_a_listener_as_istio_does():
    text = (EF + "spec:\n  workloadSelector: {labels: [not-a-map]}\n  configPatches:\n"
            "  - {applyTo: LISTENER, patch: {operation: REMOVE}}\n"
            "  - {applyTo: LISTENER, patch: {operation: MERGE, value: {socket_options: [{level: 1, name: 9, "
            "int_value: 1}]}}}\n")
    hop, = report(text)["hops"]
    assert hop["keepalive"]["enabled"] is False and hop["socket_options"] is None


def test_mesh_configmap_yaml_errors_point_into_the_file(tmp_path, capsys):
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio}\ndata:\n  mesh: |\n    accessLogFile: x\n"
            "    tcpKeepalive: [unclosed\n")
    err = one_error(tmp_path, capsys, text)
    assert ":7: data.mesh" in err or ":8: data.mesh" in err

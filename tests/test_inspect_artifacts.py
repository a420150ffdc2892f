"""Real artefacts from public sources (tests/fixtures/integrations/real/, each with its source in a
header comment or a .source file) and the few synthetic ones that stand in where no public artefact
was found (tests/fixtures/integrations/synthetic/, labelled SYNTHETIC): each read through
``inspect`` with its expected hops, values and verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_integrations import run

REAL = Path(__file__).parent / "fixtures" / "integrations" / "real"
SYNTH = Path(__file__).parent / "fixtures" / "integrations" / "synthetic"


def rep(path: Path, capsys, *extra: str) -> dict:
    rc, out, err = run(["inspect", str(path), "--json", *extra], capsys)
    assert rc == 0, err
    return json.loads(out)


def only_hop(r: dict) -> dict:
    assert len(r["hops"]) == 1, [h["name"] for h in r["hops"]]
    return r["hops"][0]


def ka(h: dict) -> tuple:
    k = h["keepalive"]
    return k["enabled"], k["idle"], k["interval"], k["count"], k["user_timeout_ms"]


def test_every_real_fixture_names_its_source():
    for f in REAL.iterdir():
        if f.suffix == ".source":
            continue
        side = f.with_name(f.name + ".source")
        head = side.read_text() if side.exists() else f.read_text()[:400]
        assert "source: " in head and ("://" in head or "commit" in head), f.name
    for f in SYNTH.iterdir():
        assert f.read_text().startswith("# SYNTHETIC"), f.name


# ----------------------------------------------------------------------------- EnvoyFilter / Envoy options
def test_istio28879_gateway_wildcard_prebind(capsys):
    h = only_hop(rep(REAL / "istio28879_gateway_prebind.yaml", capsys, "--lb", "aws-nlb-tcp"))
    assert (h["name"], h["context"]) == ("every GATEWAY listener", "GATEWAY")
    assert ka(h) == (True, 120, 30, 9, 0)
    assert h["verdict"]["safe"] is True and h["verdict"]["margin_s"] > 200


def test_envoy18107_listening_state_options(capsys):
    r = rep(REAL / "envoy18107_listener_socket_options.yaml", capsys, "--lb", "aws-nlb-tcp")
    h = only_hop(r)
    assert ka(h) == (True, 60, 60, 5, 0) and h["verdict"]["safe"]
    assert {o["state"] for o in h["socket_options"]} == {"STATE_LISTENING"}
    assert any("envoy #18107" in w for w in r["warnings"])  # the very issue: listening-socket-only options


def test_envoy23200_config_dump_strings_and_cut_paste(capsys):
    r = rep(REAL / "envoy23200_config_dump_socket_options.txt", capsys)
    h = only_hop(r)
    assert ka(h) == (True, 1, 1, 1, 0)
    assert any("pasted excerpt" in n for n in r["notes"])


def test_envoy10301_user_timeout_alone_is_no_keepalive(capsys, tmp_path):
    r = rep(REAL / "envoy10301_user_timeout.yaml", capsys, "--lb", "aws-nlb-tcp")
    h = only_hop(r)
    assert ka(h) == (False, 7200, 75, 9, 30000) and h["verdict"]["safe"] is False
    assert any("TCP_USER_TIMEOUT 30000 ms without SO_KEEPALIVE" in w for w in r["warnings"])
    rc, out, _ = run(["inspect", str(REAL / "envoy10301_user_timeout.yaml")], capsys)
    assert "TCP_USER_TIMEOUT 30000 ms" in out


def test_gloo_camelcase_int_value(capsys):
    h = only_hop(rep(REAL / "gloo_socket_options_camelcase.yaml", capsys, "--lb", "aws-nlb-tcp"))
    assert ka(h) == (True, 90, 75, 8, 0) and h["keepalive"]["fallbacks"] == ["interval"]
    assert h["verdict"]["safe"] is True


def test_envoy34454_upstream_bind_config_without_keepalive(capsys):
    h = only_hop(rep(REAL / "envoy34454_upstream_bind_config.yaml", capsys, "--upstream-lb", "aws-nlb-tcp"))
    assert (h["side"], h["name"]) == ("cluster", "cluster_0")
    assert [(o["level"], o["name"], o["value"], o["state"]) for o in h["socket_options"]] == [
        (0, 1, 64, "STATE_PREBIND")]
    assert h["keepalive"]["enabled"] is False and h["verdict"]["safe"] is False


def test_istio_bootstrap_xds_grpc_cluster(capsys):
    h = only_hop(rep(REAL / "istio_bootstrap_xds_grpc.json", capsys, "--upstream-lb", "aws-nlb-tcp"))
    assert (h["name"], ka(h)) == ("xds-grpc", (True, 300, 75, 9, 0))
    assert h["keepalive"]["fallbacks"] == ["interval", "count"] and h["verdict"]["safe"] is True


def test_envoygateway1565_go_template_leftover_exits_2(capsys):
    rc, out, err = run(["inspect", str(REAL / "envoygateway1565_bootstrap_template.yaml")], capsys)
    assert rc == 2 and out == ""
    assert ":16: Helm template leftover '{{ .XdsServer.Address }}'" in err


def test_istio_api_destinationrule_example(capsys):
    r = rep(REAL / "istio_api_destinationrule_redis.yaml", capsys, "--lb", "aws-nlb-tcp")
    h = only_hop(r)
    assert ka(h) == (True, 7200, 75, 9, 0) and h["verdict"] is None  # --lb does not judge a cluster hop
    r = rep(REAL / "istio_api_destinationrule_redis.yaml", capsys, "--upstream-lb", "aws-nlb-tcp")
    assert only_hop(r)["verdict"]["safe"] is False


# ----------------------------------------------------------------------------- ss / netstat
def test_netstat_targzro_prompt_with_clock(capsys):
    r = rep(REAL / "netstat_targzro_timers.txt", capsys, "--lb", "aws-nlb-tcp")
    s = r["summary"]
    assert (s["established"], s["keepalive"], s["unprotected"], s["hidden"]) == (6, 1, 4, 1)
    assert r["connections"][-1]["left_s"] == pytest.approx(4483.53)
    assert s["lb"]["safe"] is False and s["lb"]["unprotected_connections"] == 4
    assert s["lb"]["over_armed_connections"] == 1  # 4483 s left: TCP_KEEPIDLE is above the NLB's 350 s


def test_netstat_superuser_glued_state_and_timer(capsys):
    r = rep(REAL / "netstat_superuser240456_glued.txt", capsys)
    kinds = [c["timer"] for c in r["connections"]]
    assert kinds == ["keepalive", "timewait", "on", "keepalive", "keepalive", None, None, "on", "timewait", None,
                     None]
    assert [c["left_s"] for c in r["connections"][:1]] == [6176.47]


def test_netstat_probes_outstanding(capsys):
    r = rep(REAL / "netstat_newbedev_probes.txt", capsys)
    assert [c["count"] for c in r["connections"]] == [0, 0] + [1] * 9 + [2]
    assert r["summary"]["probing"] == 10
    assert any("probes outstanding" in w for w in r["warnings"])


def test_netstat_angle_prompt_and_backslash(capsys):
    r = rep(REAL / "netstat_xluffy_til118.txt", capsys, "--lb", "aws-nlb-tcp")
    assert [c["timer"] for c in r["connections"]] == [None, None, "keepalive"]
    assert r["summary"]["lb"]["unprotected_connections"] == 2


def test_ss_root_prompt_two_snapshots(capsys):
    r = rep(REAL / "ss_dislic_socat.txt", capsys, "--lb", "aws-nlb-tcp")
    assert [c["left_s"] for c in r["connections"]] == [92, 88]
    assert r["summary"]["lb"]["safe"] is True


def test_ss_haproxy_connection_without_timer_is_unprotected(capsys):
    r = rep(REAL / "ss_haproxy3029.txt", capsys, "--lb", "aws-nlb-tcp")
    assert r["summary"]["lb"]["unprotected_connections"] == 1
    rc, _, _ = run(["inspect", str(REAL / "ss_haproxy3029.txt"), "--lb", "aws-nlb-tcp", "--fail-on-unsafe"], capsys)
    assert rc == 3


# ----------------------------------------------------------------------------- sysctl
def test_sysctl_node_then_pod_paste(capsys):
    r = rep(REAL / "sysctl_k8s71358_node_then_pod.txt", capsys)
    assert r["netns"]["keepalive"]["triple"] == "7200/75/9"  # the pod's, pasted last
    assert sum("is set twice" in w for w in r["warnings"]) == 3
    assert any("(600 then 7200), on lines 6 and 10" in w for w in r["warnings"])


def test_sysctl_pod_prompt(capsys):
    r = rep(REAL / "sysctl_zalando3096_pod.txt", capsys, "--lb", "aws-nlb-tcp")
    assert r["netns"]["keepalive"]["triple"] == "5/1/10" and r["netns"]["verdict"]["safe"] is True


def test_sysctl_fenced_blocks_skip_ipvsadm(capsys):
    r = rep(REAL / "sysctl_kubeasz688_with_ipvsadm.md", capsys, "--lb", "aws-nlb-tcp")
    assert r["netns"]["keepalive"]["triple"] == "7200/75/9" and r["netns"]["verdict"]["safe"] is False
    assert r["notes"] == ["skipped line 5: the output of `ipvsadm -l --timeout`, not an input inspect reads"]


def test_sysctl_container_without_keepalive_keys(capsys):
    r = rep(REAL / "sysctl_guardian70_container.txt", capsys)
    assert r["netns"]["sysctl"] == {} and r["netns"]["keepalive"]["triple"] == "7200/75/9"
    assert any("kernel defaults apply" in w for w in r["warnings"])


# ----------------------------------------------------------------------------- synthetic stand-ins
def test_synthetic_istioctl_camelcase_dump(capsys):
    r = rep(SYNTH / "istioctl_proxy_config_camelcase.json", capsys, "--lb", "aws-nlb-tcp", "--upstream-lb",
            "aws-nlb-tcp")
    lst, cl = r["hops"]
    assert (lst["port"], ka(lst), lst["verdict"]["safe"]) == (8080, (True, 300, 20, 4, 0), True)
    assert [o["state"] for o in lst["socket_options"]] == ["STATE_PREBIND", None, None, None]  # numeric state 0
    assert (cl["name"], ka(cl)) == ("outbound|5432||db.default.svc.cluster.local", (True, 240, 30, 3, 20000))


def test_synthetic_multi_patch_heredoc(capsys):
    r = rep(SYNTH / "envoyfilter_multi_patch_heredoc.txt", capsys, "--lb", "aws-nlb-tcp")
    h = only_hop(r)
    assert (h["name"], ka(h), h["verdict"]["safe"]) == ("0.0.0.0_8443", (True, 240, 20, 4, 0), True)
    assert any("kubectl apply" in n for n in r["notes"])


def test_synthetic_mesh_config_and_go_durations(capsys):
    r = rep(SYNTH / "meshconfig_and_destinationrule.yaml", capsys, "--upstream-lb", "aws-nlb-tcp")
    dr, sub, other = r["hops"]
    assert ka(dr)[:4] == (True, 75, 30, 3)  # 1m15s from the DR, 30s and 3 from the mesh
    assert "meshConfig.tcpKeepalive.interval" in dr["keepalive"]["sources"]["interval"]
    assert sub["broken"] and "500ms" in sub["broken"] and sub["verdict"]["safe"] is False
    assert other["name"] == "every upstream cluster without a DestinationRule" and ka(other)[:4] == (True, 300, 30, 3)


def test_gardener_helm_template_is_refused_with_its_line(capsys):
    rc, out, err = run(["inspect", str(REAL / "gardener_envoyfilter_template.yaml")], capsys)
    assert rc == 2 and ":3: Helm template leftover '{{- if .Values.ports }}'" in err


def test_gardener_rendered_two_patches_on_one_listener(capsys):
    r = rep(REAL / "gardener_envoyfilter_rendered_8443.yaml", capsys, "--lb", "aws-nlb-tcp")
    h = only_hop(r)  # the port-only patch and the name+port patch are one listener; the CLUSTER patch is no hop
    assert (h["name"], h["port"], ka(h)) == ("0.0.0.0_8443", 8443, (True, 55, 55, 9, 0))
    assert h["source"] == "EnvoyFilter istio-ingressgateway configPatches[0], configPatches[2]"
    assert h["verdict"]["safe"] is True
    assert any("CLUSTER patch configPatches[1]" in n for n in r["notes"])
    assert any("STATE_LISTENING" in w for w in r["warnings"])

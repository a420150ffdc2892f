"""``recommend --emit``: each manifest carries its own hop's safe setting (issue 13, point 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.test_integrations import inspect_json, run

TWO_LEGS = """\
name: nlb-envoy-ipvs
duration: 1h
connections: 4
traffic: {request_gap: {fixed: 20m}}
lb: {profile: aws-nlb-tcp, idle_timeout: 350s}
envoy:
  listener: {keepalive: off}
  upstream: {keepalive: off}
upstream: {lb: kube-proxy-ipvs}
sweep:
  envoy.listener.keepalive: [off, {idle: 300, interval: 20, count: 4}]
  envoy.upstream.keepalive: [off, {time: 180s, interval: 30s, probes: 3}]
"""


def _two_legs(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "two.yaml"
    cfg.write_text(TWO_LEGS)
    out = tmp_path / "results"
    out.mkdir()
    params = {"envoy.listener.keepalive": '{"count":4,"idle":300,"interval":20}',
              "envoy.upstream.keepalive": '{"count":3,"idle":180,"interval":30}'}
    meta = {"knobs": list(params), "conditions": [], "config_file": str(cfg), "sets": [],
            "recommended": {"params": params, "safe": True, "silent_drops": 0, "min_slack_s": 30.0,
                            "predicted_margin_s": 33.6, "ka_pps_per_1000": 6.7}}
    (out / "sweep.json").write_text(json.dumps(meta))
    return cfg, out


def test_destinationrule_gets_the_upstream_values_and_the_ipvs_margin(tmp_path, capsys):
    cfg, results = _two_legs(tmp_path)
    rc, out, err = run(["recommend", str(cfg), "--emit", "all", "--results", str(results)], capsys)
    assert rc == 0, err
    docs = {d["kind"]: d for d in yaml.safe_load_all(out) if d}
    assert docs["DestinationRule"]["spec"]["trafficPolicy"]["connectionPool"]["tcp"]["tcpKeepalive"] == {
        "time": "180s", "interval": "30s", "probes": 3}
    opts = {(o["level"], o["name"]): o["int_value"]
            for o in docs["EnvoyFilter"]["spec"]["configPatches"][0]["patch"]["value"]["socket_options"]}
    assert (opts[(6, 4)], opts[(6, 5)], opts[(6, 6)]) == (300, 20, 4)
    text = out.replace("\n# ", " ")
    assert "does not protect" not in text
    # each manifest quotes the margin against the middlebox on its own leg
    ef, dr = out.split("---\n")[:2]
    # IPVS 900 s against idle 180 s + g(180 s) = 16.384 s at HZ=250 + one hop of 1 ms both ways
    dr, ef = dr.replace("\n# ", " "), ef.replace("\n# ", " ")
    assert "middlebox on this hop's leg: kube-proxy-ipvs 900 s; predicted margin 704 s at HZ=250" in dr
    assert "middlebox on this hop's leg: aws-nlb-tcp 350 s; predicted margin 33.6 s at HZ=250" in ef
    # and each round-trips through inspect to its hop's values
    path = tmp_path / "emitted.yaml"
    path.write_text(out)
    triples = {(h["side"], h["keepalive"]["triple"]) for h in inspect_json(path, capsys)["hops"]}
    assert triples == {("listener", "300/20/4"), ("cluster", "180/30/3")}


def test_a_hop_left_off_is_not_emitted(tmp_path, capsys):
    # configs/nlb.yaml sweeps the listener only; Envoy's upstream keepalive stays off
    out_dir = tmp_path / "results"
    out_dir.mkdir()
    meta = {"knobs": ["envoy.listener.keepalive.idle"], "conditions": ["kernel.hz"], "config_file": "configs/nlb.yaml",
            "sets": [], "recommended": {"params": {"envoy.listener.keepalive.idle": 310}, "safe": True,
                                        "min_slack_s": 7.25, "predicted_margin_s": 7.23, "ka_pps_per_1000": 4.75}}
    (out_dir / "sweep.json").write_text(json.dumps(meta))
    rc, out, err = run(["recommend", "configs/nlb.yaml", "--emit", "destinationrule", "--results", str(out_dir)],
                       capsys)
    assert rc == 2 and "keepalive off on the envoy upstream sockets" in err
    rc, out, err = run(["recommend", "configs/nlb.yaml", "--emit", "all", "--results", str(out_dir)], capsys)
    assert rc == 0, err
    assert [d["kind"] for d in yaml.safe_load_all(out) if d] == ["EnvoyFilter"]
    assert "# no destinationrule: keepalive is off on the envoy upstream sockets" in out


@pytest.mark.parametrize("kind", ["envoyfilter", "destinationrule"])
def test_envoy_manifests_need_an_envoy(kind, tmp_path, capsys):
    cfg = tmp_path / "sql.yaml"
    cfg.write_text("name: sql\nduration: 20m\nconnections: 4\nlb: aws-nlb-tcp\n"
                   "upstream: {keepalive: {idle: 120s, interval: 10s, count: 3}}\n"
                   "sweep: {upstream.keepalive.idle: [120s]}\n")
    rc, _, err = run(["recommend", str(cfg), "--emit", kind, "--executor", "serial",
                      "--results", str(tmp_path / "none")], capsys)
    assert rc == 2 and "has no Envoy" in err

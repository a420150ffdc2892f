"""What `run` and report.md say in words (issue 13, points 5 and 8)."""

from __future__ import annotations

from sim.cli import main
from sim.config.load import load_config
from sim.report.markdown import describe


def test_report_describes_every_distribution_in_full():
    sc = load_config("configs/nlb.yaml", ["traffic.request_gap={uniform: [60s, 3600s]}",
                                          "traffic.service_time={lognormal: {median: 5m, sigma: 1}}"]).scenario
    text = describe(sc)
    assert "uniform 60 s to 3,600 s" in text
    assert "lognormal, median 300 s, sigma 1" in text


def test_run_names_the_upstream_leg_and_why_requests_failed(capsys):
    code = main(["run", "configs/envoy-ipvs.yaml", "--set", "connections=30", "--set", "duration=2h",
                 "--set", "replications=1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "upstream leg: kube-proxy-ipvs" in out
    assert "(upstream leg (Envoy -> server))" in out  # the upstream rows' outcomes
    assert "why they failed: route_timeout" in out
    assert "kube-proxy-ipvs (upstream leg): peak" in out


def test_report_has_hang_columns_and_names_every_failure_reason(tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["sweep", "tests/sweep_small.yaml", "--executor", "serial", "--out", str(out), "--quiet"]) == 0
    report = (out / "report.md").read_text()
    assert "| hang_s_total | hang_s_open_total | requests_in_flight_at_end |" in report
    assert "reset " in report  # 345 s drops at HZ=1000: the requests that met the NLB's RST, by reason
    printed = capsys.readouterr().out
    assert "why: failed requests by reason" in printed and "reset " in printed

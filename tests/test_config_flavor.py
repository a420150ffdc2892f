"""``envoy.flavor``: the defaults of the product the config names (Envoy or Istio); written values win."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sim.config.load import load_config
from sim.execution import run_one
from sim.execution.grid import expand
from sim.results.folder import resolved_config_yaml

LONG_POLL = """\
name: flavor-long-poll
duration: 40s
connections: 1
traffic: {request_gap: {fixed: 10s}, service_time: {fixed: 20m}}
kernel: {timers: exact}
lb: {profile: aws-nlb-tcp}
envoy: {}
"""


def _timers(path, *sets):
    lst = load_config(path, list(sets)).scenario.envoy.listener
    return lst.route_timeout, lst.stream_idle_timeout, lst.idle_timeout


@pytest.fixture
def long_poll(tmp_path) -> Path:
    path = tmp_path / "long-poll.yaml"
    path.write_text(LONG_POLL)
    return path


def test_flavor_picks_the_products_defaults(long_poll):
    assert load_config(long_poll).scenario.envoy.flavor == "envoy"
    assert _timers(long_poll) == (15.0, 300.0, 3600.0)  # Envoy: route 15 s, stream idle 5 min, idle 1 h
    assert _timers(long_poll, "envoy.flavor=istio") == (0.0, 0.0, 3600.0)  # Istio turns both request timers off
    up = load_config(long_poll, ["envoy.flavor=istio"]).scenario.envoy.upstream
    assert up.idle_timeout == 3600.0 and up.retry_on_reset is False


def test_a_written_value_wins_over_the_flavor(long_poll, tmp_path):
    assert _timers(long_poll, "envoy.flavor=istio", "envoy.listener.route_timeout=30s")[:2] == (30.0, 0.0)
    assert _timers(long_poll, "envoy.listener.route_timeout=30s", "envoy.flavor=istio")[:2] == (30.0, 0.0)
    written = tmp_path / "written.yaml"
    written.write_text(LONG_POLL.replace("envoy: {}", "envoy: {flavor: istio, listener: {stream_idle_timeout: 5m}}"))
    assert _timers(written)[:2] == (0.0, 300.0)


def test_the_istio_default_turns_a_504_into_a_hang(long_poll):
    envoy = run_one(load_config(long_poll).scenario, 1).columns
    istio = run_one(load_config(long_poll, ["envoy.flavor=istio"]).scenario, 1).columns
    assert sum(envoy["route_timeouts"]) >= 1  # 504 after 15 s
    assert sum(istio["route_timeouts"]) == 0 and sum(istio["failed_requests"]) == 0
    assert sum(istio["requests_in_flight_at_end"]) >= 1  # still waiting on the 20-minute answer


def test_flavor_as_a_sweep_axis_and_in_the_resolved_config(long_poll, tmp_path):
    loaded = load_config(long_poll, ["sweep={conditions: {envoy.flavor: [envoy, istio]}}"])
    points = expand(loaded)[0]
    assert [p.scenario.envoy.listener.route_timeout for p in points] == [15.0, 0.0]
    resolved = tmp_path / "resolved.yaml"
    resolved.write_text(resolved_config_yaml(points[1].scenario))
    assert yaml.safe_load(resolved.read_text())["envoy"]["flavor"] == "istio"
    assert load_config(resolved).scenario == points[1].scenario


def _comment_header(path: Path) -> str:
    return "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_that_model_istio_say_so(path):
    sc = load_config(path).scenario
    if "istio" in _comment_header(path).lower():
        assert sc.envoy is not None and sc.envoy.flavor == "istio", path
    elif sc.envoy is not None:
        assert sc.envoy.flavor == "envoy", path

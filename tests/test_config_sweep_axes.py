"""Sweep axes: keys that cannot be swept, and knobs that are conditions (a warning at load time)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main
from sim.config import load as load_mod
from sim.config.load import load_config
from sim.config.sweepaxes import CONDITION_KEYS, NOT_SWEEPABLE, condition_reason

BASE = """\
name: axes
duration: 10m
connections: 2
lb: aws-nlb-tcp
envoy: {}
"""


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch):
    monkeypatch.setattr(load_mod, "_WARNED", set())  # each test sees its own warnings printed


def _config(tmp_path: Path, sweep: str) -> Path:
    path = tmp_path / "axes.yaml"
    path.write_text(BASE + "sweep:\n" + sweep)
    return path


def test_fleet_size_as_a_knob_warns_once_on_one_line(tmp_path, capsys):
    path = _config(tmp_path, "  connections: [100, 10000]\n  envoy.listener.keepalive.idle: [300s]\n")
    loaded = load_config(path)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"warning: {path}:7: sweep.connections: fleet size is load, not a setting"), err
    assert "sweep.conditions" in err
    assert loaded.warnings == [err.strip()[len("warning: "):]]
    load_config(path)  # the same config again in this process (recommend, report): no second line
    assert capsys.readouterr().err == ""


def test_the_same_key_as_a_condition_is_silent(tmp_path, capsys):
    path = _config(tmp_path, "  envoy.listener.keepalive.idle: [300s]\n  conditions:\n    connections: [100, 10000]\n"
                             "    traffic.request_gap: [{fixed: 5m}, {fixed: 10m}]\n    kernel.hz: [250, 1000]\n")
    assert load_config(path).warnings == []
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("key, values", [
    ("traffic.request_gap", "[{fixed: 5m}, {fixed: 10m}]"), ("network.one_way_delay", "[1ms, 50ms]"),
    ("duration", "[10m, 1h]"), ("seed", "[1, 2]"), ("kernel.hz", "[250, 1000]"), ("lb.late_packet", "[drop]"),
    ("envoy.flavor", "[envoy, istio]"), ("upstream.kernel.timers", "[exact]"),
])
def test_environment_and_workload_knobs_warn(tmp_path, capsys, key, values):
    loaded = load_config(_config(tmp_path, f"  {key}: {values}\n"))
    assert len(loaded.warnings) == 1 and f"sweep.{key}: " in loaded.warnings[0]
    assert capsys.readouterr().err.startswith("warning: ")


@pytest.mark.parametrize("key", ["lb.idle_timeout", "envoy.listener.keepalive", "envoy.listener.keepalive.idle",
                                 "kernel.sysctl.net.ipv4.tcp_keepalive_time", "client.user_timeout",
                                 "upstream.idle_timeout", "envoy.upstream.retry_on_reset", "lb"])
def test_user_settings_are_knobs(key):
    assert condition_reason(key) is None


def test_every_listed_condition_has_a_reason_and_no_key_is_both_lists():
    assert all(reason.strip() for reason in CONDITION_KEYS.values())
    assert not set(CONDITION_KEYS) & set(NOT_SWEEPABLE)


def test_a_knob_warning_set_on_the_command_line_names_the_option(tmp_path, capsys):
    path = _config(tmp_path, "  envoy.listener.keepalive.idle: [300s]\n")
    loaded = load_config(path, ["sweep.connections=[10, 20]"])
    assert loaded.warnings[0].startswith("--set sweep.connections: sweep.connections: fleet size")


@pytest.mark.parametrize("path", sorted(Path("configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_configs_sweep_only_settings_as_knobs(path):
    assert load_config(path).warnings == []


def test_seed_swept_as_a_condition_runs(tmp_path, capsys):
    path = _config(tmp_path, "  envoy.listener.keepalive.idle: [300s]\n  conditions:\n    seed: [1, 2]\n")
    code = main(["sweep", str(path), "--executor", "serial", "--quiet", "--no-report", "--out", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err and "internal error" not in err

"""Every shipped config loads, sweep block included, and runs one short replication."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.config.load import load_config
from sim.execution import run_one
from sim.execution.grid import expand

CONFIGS = sorted(Path("configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_runs(path):
    loaded = load_config(path)
    points, knobs, _ = expand(loaded)
    assert points and knobs, "each shipped config sweeps at least one knob"
    sc = load_config(path, ["connections=3", "duration=20m", "replications=1"]).scenario
    rec = run_one(sc, 1)
    assert len(rec.columns["conn_id"]) >= 3


def test_set_sweep_axis_with_dotted_key():
    loaded = load_config("configs/nlb.yaml", ["sweep.conditions.kernel.hz=[100, 300]"])
    assert loaded.raw["sweep"]["conditions"]["kernel.hz"] == [100, 300]


def test_set_socket_options_replaces_file_keepalive():
    loaded = load_config("configs/nlb.yaml", ["envoy.listener.socket_options=[{level: 1, name: 9, int_value: 1}, "
                                              "{level: 6, name: 4, int_value: 120}]"])
    ka = loaded.scenario.envoy.listener.keepalive
    assert (ka.enabled, ka.idle, ka.interval) == (True, 120, None)

"""A pcap written by ``trace --pcap``, read back by ``inspect``, gives the config's own keepalive
values and the simulator's verdict (issue 15: the two directions of pcap agree)."""

from __future__ import annotations

import json

import pytest

from sim.cli import main

SMALL = ["--set", "connections=5", "--set", "duration=2h"]


def trace_then_inspect(tmp_path, capsys, *args: str) -> dict:
    pcap = tmp_path / "conn.pcap"
    assert main(["trace", "configs/nlb.yaml", *SMALL, *args, "--at", "envoy", "--pcap", str(pcap)]) == 0
    capsys.readouterr()
    code = main(["inspect", str(pcap), "--lb", "aws-nlb-tcp", "--hz", "250", "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def simulated_drops(capsys, idle_s: int) -> int:
    assert main(["run", "configs/nlb.yaml", *SMALL, "--set", f"envoy.listener.keepalive.idle={idle_s}",
                 "--set", "replications=1", "--json"]) == 0
    return json.loads(capsys.readouterr().out)["silent_drops"]


@pytest.mark.parametrize(("idle_s", "safe"), [(300, True), (360, False)])
def test_trace_pcap_read_back_by_inspect_gives_the_configs_keepalive_and_verdict(tmp_path, capsys, idle_s, safe):
    pick = ["--conn", "0"] if safe else ["--first-drop"]
    report = trace_then_inspect(tmp_path, capsys, "--set", f"envoy.listener.keepalive.idle={idle_s}", *pick)
    [flow] = report["flows"]
    ka = flow["keepalive"]
    assert ka["role"] == "server"  # Envoy's accepted socket probes the client (the listener's keepalive)
    lo, hi = ka["setting"]["idle"]
    assert lo <= idle_s <= hi  # the wheel's lateness (R40) widens what a capture can tell
    assert flow["verdict"]["safe"] is safe
    # and the simulator agrees: the unsafe setting drops connections silently, the safe one none
    assert (simulated_drops(capsys, idle_s) == 0) is safe

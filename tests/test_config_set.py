"""``--set``: an error in a value names ``--set KEY`` as its file; sweep keys; the socket_options spelling."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sim.cli import main
from sim.config.load import load_config
from sim.errors import ConfigError
from sim.execution.grid import expand

NLB = "configs/nlb.yaml"
SMALL = "tests/sweep_small.yaml"


def _one_line_exit_2(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("item, start, text", [
    ("kernel.hz=500", "error: --set kernel.hz: kernel.hz: 500 is not a valid choice", "100, 250, 300 or 1000"),
    ("client.kernel.hz=250.0", "error: --set client.kernel.hz: client.kernel.hz: 250.0 is not an integer", "250"),
    ("kernel.timers=jiffies", "error: --set kernel.timers: kernel.timers: 'jiffies' is not a valid choice", "wheel"),
    ("kernel.sysctl.net.ipv4.tcp_keepalive_tme=600",
     "error: --set kernel.sysctl.net.ipv4.tcp_keepalive_tme: kernel.sysctl.net.ipv4.tcp_keepalive_tme: unknown sysctl",
     "did you mean 'net.ipv4.tcp_keepalive_time'"),
    ("envoy.kernel.sysctl.net.ipv4.tcp_retries2=300",
     "error: --set envoy.kernel.sysctl.net.ipv4.tcp_retries2: envoy.kernel.sysctl.net.ipv4.tcp_retries2:", "0..255"),
    ("lb.profile=aws-nlb", "error: --set lb.profile: lb.profile: unknown profile 'aws-nlb'", "did you mean"),
    ("lb=aws-nlb", "error: --set lb: lb.profile: unknown profile 'aws-nlb'", "aws-nlb-tcp"),
    ("lb={profile: aws-nlb-tcp, idle_timeout: 30s}", "error: --set lb: lb.idle_timeout: 30 s is outside", "60..6000 s"),
    ("client.kepalive=on", "error: --set client.kepalive: client.kepalive: unknown key; did you mean 'keepalive'?",
     "user_timeout"),
    ("client._keepalive=on", "error: --set client._keepalive: client._keepalive: unknown key", "keepalive"),
    ("envoy.upstream.retry_on_reset=yes",
     "error: --set envoy.upstream.retry_on_reset: envoy.upstream.retry_on_reset: 'yes' is not a boolean", "true"),
    ("upstream.grpc.permit_without_calls=1", "error: --set upstream.grpc.permit_without_calls:", "1 is not a boolean"),
    ("connections=true", "error: --set connections: connections: True is not an integer", "1..1000000000"),
    ("connections=9223372036854775808", "error: --set connections: connections:", "1..1000000000"),
    ("duration='350'", "error: --set duration: duration: '350' has no unit", "350s"),
    ("network.one_way_delay=1e-300", "error: --set network.one_way_delay:", "shorter than 1 µs"),
    ("traffic.request_gap={lognormal: {median: 5m, sigma: .inf}}",
     "error: --set traffic.request_gap: traffic.request_gap.lognormal.sigma:", "0..10"),
    ("envoy.listener.socket_options=[{level: 6, name: 4, int_value: 0}]",
     "error: --set envoy.listener.socket_options: envoy.listener.socket_options[0].int_value: TCP_KEEPIDLE 0",
     "1..32767"),
    ("sweep.envoy.listener.keepalive.idle=[300s, 0s]",
     "error: --set sweep.envoy.listener.keepalive.idle: sweep.envoy.listener.keepalive.idle[1]: value '0s'",
     "1..32767"),
    ("sweep.replications=[1, 2]", "error: --set sweep.replications: sweep.replications: cannot be swept", "name"),
])
def test_a_bad_set_value_names_its_set_option(capsys, item, start, text):
    err = _one_line_exit_2(capsys, ["run", NLB, "--set", item])
    assert err.startswith(start), err
    assert text in err, err


def test_a_file_error_keeps_its_line_next_to_a_set(capsys, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lb: aws-nlb-tcp\nkernel:\n  hz: 500\n")
    err = _one_line_exit_2(capsys, ["run", str(cfg), "--set", "connections=2"])
    assert err.startswith(f"error: {cfg}:3: kernel.hz: 500"), err


def test_set_sweep_dotted_key_adds_or_replaces_an_axis():
    # docs/config.md "--set KEY=VALUE": the rest of a sweep.KEY is one axis name
    loaded = load_config(SMALL, ["sweep.lb.idle_timeout=[350s, 600s]"])
    points, knobs, conds = expand(loaded)
    assert knobs == ["envoy.listener.keepalive.idle", "lb.idle_timeout"] and conds == ["kernel.hz"]
    assert len(points) == 2 * 2 * 2
    loaded = load_config(SMALL, ["sweep.conditions.kernel.hz=[100, 300, 1000]"])
    assert expand(loaded)[2] == ["kernel.hz"] and len(expand(loaded)[0]) == 2 * 3
    with pytest.raises(ConfigError, match="both a knob and a condition"):
        load_config(SMALL, ["sweep.kernel.hz=[250, 1000]"])  # kernel.hz is already a condition there


def _set_examples(section: str) -> list[str]:
    """The ``--set '...'`` examples (in code spans) of one section of docs/config.md."""
    text = Path("docs/config.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [m.group(1) or m.group(2) for m in re.finditer(r"`--set '([^']+)'`|`--set ([^` ]+)`", body)]


def test_the_documented_set_examples_on_sweep_keys_work():
    examples = [e for e in _set_examples("--set KEY=VALUE") if e.startswith("sweep")]
    assert len(examples) >= 3, examples
    for item in examples:
        loaded = load_config(SMALL, [item])
        assert expand(loaded)[0], item


def test_socket_options_are_decoded_outside_the_raw_mapping():
    loaded = load_config(NLB)
    listener = loaded.raw["envoy"]["listener"]
    assert not any(str(k).startswith("_") for k in listener), listener
    assert "socket_options" not in listener
    assert listener["keepalive"] == {"enabled": True, "idle": 300, "interval": 20, "count": 4}
    assert loaded.listener_socket_options == [
        {"level": 1, "name": 9, "int_value": 1}, {"level": 6, "name": 4, "int_value": 300},
        {"level": 6, "name": 5, "int_value": 20}, {"level": 6, "name": 6, "int_value": 4}]


def test_both_spellings_rules_hold_for_set_and_sweep_values():
    # a --set on keepalive (or one of its fields) wins over socket_options; missing fields keep theirs
    ka = load_config(NLB, ["envoy.listener.keepalive.idle=320"]).scenario.envoy.listener.keepalive
    assert (ka.enabled, ka.idle, ka.interval, ka.count) == (True, 320, 20, 4)
    ka = load_config(NLB, ["envoy.listener.keepalive=off"]).scenario.envoy.listener.keepalive
    assert not ka.enabled
    # new socket_options win over the file's keepalive, also inside a whole listener mapping
    ka = load_config(NLB, ["envoy.listener={socket_options: [{level: 1, name: 9, int_value: 1}, "
                           "{level: 6, name: 4, int_value: 120}]}"]).scenario.envoy.listener.keepalive
    assert (ka.enabled, ka.idle, ka.interval) == (True, 120, None)
    # two spellings in one value must agree
    with pytest.raises(ConfigError, match="disagrees with socket_options") as exc:
        load_config(NLB, ["envoy.listener={socket_options: [{level: 1, name: 9, int_value: 1}], keepalive: off}"])
    assert exc.value.file == "--set envoy.listener"
    # a sweep on socket_options replaces the file's keepalive at that point
    loaded = load_config(SMALL, ["sweep={envoy.listener.socket_options: [[{level: 1, name: 9, int_value: 1}, "
                                 "{level: 6, name: 4, int_value: 200}]]}"])
    point = expand(loaded)[0][0]
    ka = point.scenario.envoy.listener.keepalive
    assert (ka.enabled, ka.idle, ka.interval, ka.count) == (True, 200, None, None)


def test_a_user_cannot_write_the_old_private_marker():
    with pytest.raises(ConfigError, match="unknown key") as exc:
        load_config(NLB, ["envoy.listener._socket_options=[]"])
    assert exc.value.key == "envoy.listener._socket_options"


def test_a_set_of_a_swept_key_pins_its_axis_to_that_value():
    """``--set connections=6`` on a sweep of fleet sizes (configs/reconnect-storm.yaml) scales it
    down, instead of being replaced by the axis's values at every point."""
    plain = expand(load_config("configs/reconnect-storm.yaml"))[0]
    assert sorted({p.scenario.connections for p in plain}) == [1000, 5000, 20000]
    loaded = load_config("configs/reconnect-storm.yaml", ["connections=6", "envoy.listener.keepalive=off"])
    assert loaded.raw["sweep"]["conditions"]["connections"] == [6]
    assert loaded.raw["sweep"]["envoy.listener.keepalive"] == ["off"]  # a knob axis too
    points = expand(loaded)[0]
    assert len(points) == 1 and points[0].scenario.connections == 6
    assert not points[0].scenario.envoy.listener.keepalive.enabled
    # a key inside an axis's value is left to the axis (run uses it; the sweep's values replace it)
    inner = load_config("configs/reconnect-storm.yaml", ["envoy.listener.keepalive.idle=320"])
    assert inner.raw["sweep"]["envoy.listener.keepalive"] == plain_axis("configs/reconnect-storm.yaml")
    assert load_config(NLB, ["envoy.listener.keepalive.idle=320"]).raw["sweep"]["envoy.listener.keepalive.idle"] == [
        320]


def plain_axis(path: str) -> list:
    return load_config(path).raw["sweep"]["envoy.listener.keepalive"]

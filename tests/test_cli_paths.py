"""What the command line does on the paths users meet less often, in this process: a config on
standard input (and one that is not UTF-8), bad --workers, analytic screening, the profile list,
interrupts, internal errors, a closed pipe, and validate's table, JSON and exit codes."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

import sim.cli
from sim.cli import main
from sim.config.load import load_config
from sim.config.profiles import all_profiles
from sim.execution import run_one
from sim.metrics.summary import summarize_one
from sim.testbed import validate as tb
from sim.testbed.lifecycle import replay_of, run_sim_replay

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))


def _stdin(monkeypatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


def _one_line(text: str) -> str:
    assert text.count("\n") == 1, text
    return text


def test_run_reads_a_config_from_stdin(monkeypatch, capsys):
    _stdin(monkeypatch, Path(SMALL).read_bytes())
    assert main(["run", "-", "--set", "connections=2", "--set", "duration=5m", "--set", "replications=1",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["connections"] == 2


def test_a_config_on_stdin_that_is_not_utf8_is_one_line_exit_2(monkeypatch, capsys):
    _stdin(monkeypatch, b"name: caf\xe9\n")
    assert main(["run", "-"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("error: <stdin>: not UTF-8 text (byte 9)") and "(allowed: UTF-8 encoded YAML)" in err


@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_workers_below_one_is_refused(cmd, capsys):
    assert main([cmd, SMALL, "--workers", "0", "--quiet"]) == 2
    assert "--workers 0" in _one_line(capsys.readouterr().err)


def _analytic_config(tmp_path: Path) -> Path:
    """One connection, exact timers, fixed gaps: in the closed form's scope. Keepidle 300 s is well
    inside the 350 s NLB, 350 s sits on the boundary (simulated), 400 s is well outside."""
    path = tmp_path / "screen.yaml"
    path.write_text("name: screen\nduration: 1h\nconnections: 1\nkernel: {hz: 250, timers: exact}\n"
                    "traffic: {ramp: 0s, request_gap: {fixed: 1000s}}\n"
                    "lb: {profile: aws-nlb-tcp, idle_timeout: 350s}\n"
                    "client: {keepalive: {idle: 300, interval: 10, count: 3}}\n"
                    "sweep:\n  client.keepalive.idle: [300s, 350s, 400s]\n")
    return path


def test_analytic_screening_agrees_with_the_simulator(tmp_path, capsys):
    path = _analytic_config(tmp_path)
    assert main(["sweep", str(path), "--method", "analytic", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["points"]
    assert [r["method"] for r in rows] == ["analytic", "simulated", "analytic"]
    assert [r["safe"] for r in rows] == [True, False, False]
    assert rows[2]["outcome"] == "reset_on_probe" and rows[2]["first_late_packet"] == "client_probe"
    for row in rows:  # every screened verdict is the simulator's
        sc = load_config(path, [f"client.keepalive.idle={row['params']['client.keepalive.idle']}"]).scenario
        s = summarize_one(run_one(sc, 1), sc.duration)
        assert (s["silent_drops"] == 0) == row["safe"], row
        if row["method"] == "analytic":
            assert s["min_slack_s"] == pytest.approx(row["min_slack_s"], abs=1e-9)


def test_analytic_screening_prints_a_table(tmp_path, capsys):
    assert main(["sweep", str(_analytic_config(tmp_path)), "--method", "analytic"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["client.keepalive.idle", "method", "safe", "slack_s", "first", "late", "packet",
                                "outcome", "detect_s"]
    assert [line.split()[1:3] for line in lines[1:]] == [["analytic", "yes"], ["simulated", "NO"], ["analytic", "NO"]]


def test_profiles_lists_every_profile_with_its_timeout_and_source(capsys):
    assert main(["profiles"]) == 0
    out = capsys.readouterr().out.splitlines()
    profiles = all_profiles()
    assert len(out) == 2 * len(profiles)
    for name, p in profiles.items():
        line = next(i for i, text in enumerate(out) if text.startswith(f"{name} "))
        assert f"idle {p.idle_timeout_s:>8g}s" in out[line] and f"on_expiry={p.on_expiry}" in out[line]
        assert out[line + 1].strip() == p.sources[0].url
    assert "late_packet=client:rst_to_sender/server:drop" in "\n".join(out)  # a per-direction policy


def _failing(monkeypatch, exc: BaseException) -> None:
    def boom(args):
        raise exc

    monkeypatch.setattr(sim.cli, "_cmd_profiles", boom)


def test_ctrl_c_exits_130_with_one_line(monkeypatch, capsys):
    _failing(monkeypatch, KeyboardInterrupt())
    assert main(["profiles"]) == 130
    assert _one_line(capsys.readouterr().err) == "interrupted\n"


def test_an_internal_error_is_one_line_exit_1_and_a_traceback_with_sim_debug(monkeypatch, capsys):
    _failing(monkeypatch, RuntimeError("boom\nsecond line"))
    monkeypatch.delenv("SIM_DEBUG", raising=False)
    assert main(["profiles"]) == 1
    err = _one_line(capsys.readouterr().err)
    assert err == "internal error: RuntimeError: boom\\nsecond line (set SIM_DEBUG=1 for a traceback)\n"
    monkeypatch.setenv("SIM_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["profiles"])


def test_a_closed_pipe_exits_141_and_prints_nothing(monkeypatch, capsys):
    _failing(monkeypatch, BrokenPipeError())
    assert main(["profiles"]) == 141
    assert capsys.readouterr() == ("", "")


# -- validate --kernel: what it prints and returns, with the kernel side replaced ----------------------
def _case(name: str = "rst-keepalive-below", **kw) -> tb.CaseResult:
    fields = {"name": name, "config": f"configs/kernel/{name}.yaml", "kernel_outcome": "reset_on_probe",
              "sim_outcome": "reset_on_probe", "kernel_t_s": 300.05, "sim_t_s": 300.02, "kernel_probes": 1,
              "sim_probes": 1, "tolerance_s": 0.082} | kw
    return tb.CaseResult(**fields)


@pytest.mark.parametrize("change, agrees", [
    ({}, True),
    ({"sim_outcome": "ok"}, False),  # another outcome
    ({"sim_t_s": math.nan}, False),  # one side has an error time, the other none
    ({"sim_t_s": 300.05 - 0.083}, False),  # just over the tolerance
    ({"sim_t_s": 300.05 - 0.081}, True),  # just inside it
    ({"sim_probes": 2}, False),  # another probe count
    ({"kernel_syns": 6, "sim_syns": 6, "kernel_fins": 0, "sim_fins": 0}, True),  # a handshake case
    ({"kernel_syns": 6, "sim_syns": 5}, False),  # another SYN count
    ({"kernel_fins": 5, "sim_fins": 4}, False),  # another FIN count
    ({"kernel_fins": 5}, False),  # counted on the kernel, not predicted by the model
])
def test_a_case_agrees_only_when_outcome_time_and_counts_do(change, agrees):
    assert _case(**change).ok is agrees


def test_validate_shows_the_compared_syn_or_fin_counts():
    rows = tb.table([_case(kernel_syns=6, sim_syns=6, kernel_fins=0, sim_fins=0),
                     _case(kernel_syns=1, sim_syns=1, kernel_fins=5, sim_fins=4),
                     _case(kernel_fins=5)], 250).splitlines()[2:5]
    assert [row.split()[-3:] for row in rows] == [["6/6", "SYN", "agree"], ["5/4", "FIN", "DISAGREE"],
                                                  ["5/-", "FIN", "DISAGREE"]]


@pytest.mark.parametrize("cases, code, verdict", [([_case()], 0, "agree"),
                                                   ([_case(), _case("x", sim_probes=4)], 1, "DISAGREE")])
def test_validate_prints_one_row_per_case_and_exits_1_on_any_disagreement(monkeypatch, capsys, cases, code, verdict):
    monkeypatch.setattr(tb, "validate", lambda hz: cases)
    assert main(["validate", "--kernel", "--hz", "250"]) == code
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("(HZ=250) vs simulator (wheel timers, HZ=250)")
    assert out[2].split() == ["rst-keepalive-below", "reset_on_probe", "reset_on_probe", "300.050", "300.020",
                              "0.030", "0.082", "1/1", "-", "agree"]
    assert out[-2].split()[-1] == verdict
    assert out[-1] == f"1 passed, {len(cases) - 1} failed"


def test_validate_reports_an_unavailable_testbed_with_exit_77(monkeypatch, capsys):
    def unavailable(hz):
        raise tb.Unavailable("no nft")

    monkeypatch.setattr(tb, "validate", unavailable)
    monkeypatch.delenv("CI", raising=False)
    assert main(["validate", "--kernel"]) == 77
    assert _one_line(capsys.readouterr().err) == "validate: skipped: no nft\n"


def test_the_tolerance_is_one_granularity_of_the_longest_timer_plus_50_ms():
    # keepalive 300/20/4 at HZ=250: 300 s lands on the wheel level of 4096 jiffies (16.384 s)
    sc = load_config("configs/kernel/blackhole-keepalive-above.yaml", []).scenario
    longest = max(sc.client.keepalive.idle or 0, sc.client.keepalive.interval or 0, 1)
    from sim.facts.wheel import wheel_granularity_j

    assert tb._tolerance_s(sc, 250, "timeout_keepalive") == pytest.approx(
        wheel_granularity_j(int(longest * 250)) / 250 + 0.05, abs=1e-12)
    # data into a black hole: the last RTO step is as long as the retransmission deadline
    data = load_config("configs/kernel/blackhole-data-retries2.yaml", []).scenario
    assert tb._tolerance_s(data, 250, "timeout_retrans") > tb._tolerance_s(data, 250, "timeout_keepalive")


#: each kernel case's outcome and probe count as its file's comment states them
CASES = {
    "blackhole-data-retries2": ("timeout_retrans", 0),
    "blackhole-keepalive-above": ("timeout_keepalive", 2),  # two unanswered probes, then ETIMEDOUT
    "blackhole-keepalive-below": ("ok", None),
    "blackhole-keepalive-user-timeout": ("timeout_keepalive", 1),  # U replaces the count (R17)
    "blackhole-no-keepalive-user-timeout": ("timeout_retrans", 0),
    "rst-keepalive-above": ("reset_on_probe", 1),  # the first probe meets the forgotten flow
    "rst-keepalive-below": ("ok", None),
    "rst-no-keepalive": ("reset_on_send", 0),
    "server-keepalive-only": ("ok", None),
}


#: each handshake or close case's outcome and SYN or FIN count as its file's comment states them
REPLAY_CASES = {
    "orphan-fin-blackhole": ("orphan_died", 5),  # FIN, loss probe, three RTO retransmissions (R46, R47)
    "syn-retries": ("connect_timeout", 6),  # tcp_syn_retries 2 with linear timeouts: SYNs at 0..4 s, 7 s (R42, R43)
    "syn-syncnt": ("connect_timeout", 3),  # TCP_SYNCNT 1: the SYN and two retransmissions, 3 s (R43)
    "syn-user-timeout": ("connect_timeout", 3),  # TCP_USER_TIMEOUT 2.5 s clamps the RTO (R43)
}


def test_every_kernel_case_is_listed():
    assert sorted(p.stem for p in tb.case_paths()) == sorted(CASES | REPLAY_CASES)


@pytest.mark.parametrize("name", sorted(REPLAY_CASES))
def test_the_simulated_side_of_each_replay_case_is_what_its_file_says(name):
    sc = load_config(tb.CASES_DIR / f"{name}.yaml", ["kernel.hz=250", "kernel.timers=wheel"]).scenario
    replay = replay_of(sc)
    assert replay is not None
    got = run_sim_replay(sc, replay)
    assert (got.outcome, got.syns if replay.kind == "connect" else got.fins) == REPLAY_CASES[name]
    assert not math.isnan(got.t_s)


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_simulated_side_of_each_kernel_case_is_what_its_file_says(name):
    # what validate compares with the kernel: the client's outcome, error time after connect, probes
    sc = load_config(tb.CASES_DIR / f"{name}.yaml", ["kernel.hz=250", "kernel.timers=wheel"]).scenario
    outcome, t, probes = tb.run_sim_case(sc)
    expected, expected_probes = CASES[name]
    assert outcome == expected
    assert math.isnan(t) == (outcome == "ok")
    if expected_probes is not None:
        assert probes == expected_probes

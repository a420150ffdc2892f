"""User-written traffic processes (``traffic.process``, issue 14 point 2): the contract of
docs/config.md#traffic-process, its errors (exit 2, one line), and the shipped example."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.config.load import load_config
from sim.errors import ConfigError, ProcessError
from sim.execution import run_one
from sim.facts.names import FAILURE_REASONS
from sim.spec import Shortcuts

ROOT = Path(__file__).resolve().parent.parent
BASE = """\
name: process
duration: {duration}
seed: 3
connections: {connections}
traffic:
  ramp: 30s
  process: {module}:{function}
  params: {params}
"""


def write(tmp_path: Path, module: str, code: str, *, function: str = "behave", params: str = "{}",
          connections: int = 2, duration: str = "1h", extra: str = "") -> Path:
    """A config and its behaviours module in ``tmp_path``; module names are unique per test."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(code))
    cfg = tmp_path / "config.yaml"
    cfg.write_text(BASE.format(module=module, function=function, params=params, connections=connections,
                               duration=duration) + textwrap.dedent(extra))
    return cfg


def simulate(cfg: Path, *sets: str):
    sc = load_config(cfg, list(sets)).scenario
    return run_one(sc, sc.seed)


def rows(rec, leg: str = "downstream") -> list[dict]:
    c = rec.columns
    return [{k: c[k][i] for k in c} for i in range(len(c["conn_id"])) if c["leg"][i] == leg]


def same_columns(a: dict, b: dict) -> bool:
    def same(x, y) -> bool:
        return x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))

    return a.keys() == b.keys() and all(all(same(x, y) for x, y in zip(a[k], b[k], strict=True)) for k in a)


# ----------------------------------------------------------------------------- the contract
def test_a_process_sending_a_request_every_period_gives_the_built_in_fixed_gap_records(tmp_path):
    # The built-in traffic sends the next request one gap after each answer; this process does the
    # same. Through Envoy with a route timeout some requests fail (504) without losing the
    # connection, the service time is drawn per request, and the NLB is kept open by Envoy's
    # keepalive: every record column, counter and series must be the built-in traffic's.
    code = """
        def every(env, conn, rng, period_s):
            while True:
                yield conn.request()
                yield env.timeout(period_s)
        """
    extra = """
        traffic: {ramp: 30s, process: "every_mod:every", params: {period_s: 400}, service_time: {exponential: 2s}}
        lb: {profile: aws-nlb-tcp}
        envoy:
          listener: {keepalive: {idle: 300s, interval: 20s, count: 4}, route_timeout: 3s}
        """
    (tmp_path / "every_mod.py").write_text(textwrap.dedent(code))
    cfg = tmp_path / "config.yaml"
    cfg.write_text("name: matched\nduration: 2h\nseed: 5\nconnections: 6\n" + textwrap.dedent(extra))
    process = simulate(cfg)
    builtin = simulate(cfg, "traffic={ramp: 30s, request_gap: {fixed: 400s}, service_time: {exponential: 2s}}")
    assert sum(r["route_timeouts"] for r in rows(process)) > 0  # the 504s did happen
    assert sum(r["requests"] for r in rows(process)) > 6 * 15
    assert same_columns(process.columns, builtin.columns)
    assert process.counters == builtin.counters
    assert process.series == builtin.series
    # and the reference engine agrees with the fast one on a process's run too
    sc = load_config(cfg).scenario
    reference = run_one(sc, sc.seed, shortcuts=Shortcuts.none())
    assert same_columns(process.columns, reference.columns) and process.counters == reference.counters
    assert reference.run["events"] > process.run["events"]


def test_replies_report_ok_reason_and_latency_and_dead_connections_reopen_on_the_next_request(tmp_path):
    # Requests 400 s apart through the NLB (350 s idle timeout): after the first, each request meets
    # the forgotten flow, gets an RST (reason "reset"); nothing reopens by itself, so the next
    # request is the one that opens a new connection, and it succeeds.
    cfg = write(tmp_path, "reopen_mod", """
        REPLIES = []

        def behave(env, conn, rng, period_s):
            for _ in range(4):
                reply = yield conn.request()
                REPLIES.append((env.now, reply.ok, reply.reason, reply.latency_s))
                if not reply.ok:
                    reply = yield conn.request()
                    REPLIES.append((env.now, reply.ok, reply.reason, reply.latency_s))
                yield env.timeout(period_s)
        """, params="{period_s: 400}", connections=1, duration="2h",
        extra="lb: {profile: aws-nlb-tcp}\nnetwork: {one_way_delay: 1ms}\n")
    rec = simulate(cfg)
    replies = sys.modules["reopen_mod"].REPLIES
    assert [(ok, reason) for _, ok, reason, _ in replies] == [(True, None), (False, "reset"), (True, None),
                                                             (False, "reset"), (True, None), (False, "reset"),
                                                             (True, None)]
    assert all(reason is None or reason in FAILURE_REASONS for _, _, reason, _ in replies)
    # a request on an open connection waits one round trip (4 ms, no service time); a reopening one
    # waits the handshake too
    assert replies[0][3] == pytest.approx(0.008, abs=1e-9)  # opened by the slot at its start
    assert replies[2][3] == pytest.approx(0.008, abs=1e-9)
    down = rows(rec)
    assert len(down) == 4  # the first connection and one per reset, each opened by a request
    # the last one, idle after the process returned, is forgotten by the NLB too
    assert [r["client_outcome"] for r in down] == ["reset_on_send"] * 3 + ["zombie"]
    for r, (t, *_rest) in zip(down[1:], [replies[1], replies[3], replies[5]], strict=True):
        assert r["opened_at_s"] == pytest.approx(t, abs=1e-9)  # opened when the failed reply came back


def test_processes_start_at_their_slots_open_times_with_their_own_random_streams(tmp_path):
    cfg = write(tmp_path, "start_mod", """
        STARTS = {}

        def behave(env, conn, rng):
            STARTS[env.now] = (type(rng).__name__, rng.random())
            yield env.timeout(1)
        """, connections=3)
    simulate(cfg)
    first = dict(sys.modules["start_mod"].STARTS)
    assert sorted(first) == [0.0, 10.0, 20.0]  # i x ramp / connections
    assert {kind for kind, _ in first.values()} == {"Generator"}
    assert len({x for _, x in first.values()}) == 3  # one stream per slot
    expected = np.random.default_rng(np.random.SeedSequence(3, spawn_key=(1, 1))).random()
    assert first[10.0][1] == expected  # slot 1's stream: (seed, 1, slot), the one its gaps would use
    sys.modules["start_mod"].STARTS.clear()
    simulate(cfg)
    assert sys.modules["start_mod"].STARTS == first  # seeded: the same again


def test_returning_ends_the_traffic_and_close_closes_the_clients_socket(tmp_path):
    cfg = write(tmp_path, "close_mod", """
        def behave(env, conn, rng, n, size):
            for _ in range(n):
                reply = yield conn.request(size_bytes=size, service_time_s=2.0)
                assert reply.ok and reply.latency_s >= 2.004  # 2 s of service and a 4 ms round trip
            yield env.timeout(60)
            conn.close()
            yield env.timeout(60)
            yield conn.request()
        """, params="{n: 3, size: 1000}", connections=1, extra="lb: {profile: aws-nlb-tcp}\n")
    rec = simulate(cfg)
    first, second = rows(rec)
    assert first["requests"] == 3 and second["requests"] == 1  # nothing after the function returned
    # the first request also waited for the handshake (4 ms)
    assert first["client_closed_at_s"] == pytest.approx(0.004 + 3 * 2.004 + 60, abs=1e-6)  # conn.close()
    assert first["client_outcome"] == "ok"
    assert second["opened_at_s"] == pytest.approx(first["client_closed_at_s"] + 60, abs=1e-6)
    assert math.isnan(second["client_closed_at_s"])  # still open at the end
    # the requests' own size: 1000 application bytes each through the LB, against the run's 0
    small = simulate(cfg, "traffic.params={n: 3, size: 0}")
    assert (sum(rec.series["devices"][0]["bytes_per_bucket"])
            - sum(small.series["devices"][0]["bytes_per_bucket"])) == 3 * 1000


def test_closing_with_a_request_waiting_fails_it_as_a_client_timeout(tmp_path):
    cfg = write(tmp_path, "giveup_mod", """
        REPLIES = []

        def behave(env, conn, rng):
            answer = conn.request(service_time_s=30.0)
            yield env.timeout(5)
            conn.close()
            reply = yield answer
            REPLIES.append((reply.ok, reply.reason, reply.latency_s))
        """, connections=1)
    rec = simulate(cfg)
    assert sys.modules["giveup_mod"].REPLIES == [(False, "client_timeout", 5.0)]
    (row,) = rows(rec)
    assert row["failed_requests"] == 1 and row["client_timeouts"] == 1


# ----------------------------------------------------------------------------- errors: exit 2, one line
def _cli(cfg: Path, capsys) -> tuple[int, str]:
    code = main(["run", str(cfg)])
    return code, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line and not line.startswith("sim: ")]
    assert len(lines) == 1, err
    return lines[0]


def test_an_exception_in_the_process_ends_the_run_with_exit_2_and_one_line(tmp_path, capsys):
    cfg = write(tmp_path, "boom_mod", """
        def behave(env, conn, rng):
            yield conn.request()
            yield env.timeout(10)
            1 / 0
        """)
    code, err = _cli(cfg, capsys)
    assert code == 2
    line = _one_line(err)
    assert "boom_mod:behave" in line and "ZeroDivisionError: division by zero (boom_mod.py:5)" in line


@pytest.mark.parametrize("module, function, problem", [
    ("nowhere_mod", "behave", "no module named 'nowhere_mod'"),
    ("present_mod", "absent", "has no function 'absent'"),
])
def test_a_process_that_cannot_be_found_ends_the_run_with_exit_2_and_one_line(tmp_path, capsys, module, function,
                                                                               problem):
    cfg = write(tmp_path, "present_mod", "def behave(env, conn, rng):\n    yield env.timeout(1)\n")
    cfg.write_text(cfg.read_text().replace("present_mod:behave", f"{module}:{function}"))
    code, err = _cli(cfg, capsys)
    assert code == 2
    line = _one_line(err)
    assert f"{module}:{function}" in line and problem in line


@pytest.mark.parametrize("code, problem", [
    ("def behave(env, conn, rng):\n    return 1\n", "not a generator"),
    ("def behave(env, conn, rng):\n    yield 5\n", "yielded 5, not a SimPy event"),
    ("def behave(env, conn, rng):\n    conn.request()\n    yield conn.request()\n", "one request at a time"),
    ("def behave(env, conn, rng):\n    yield conn.request(size_bytes=-1)\n", "size_bytes=-1"),
    ("def behave(env, conn, rng, period_s):\n    yield env.timeout(1)\n", "TypeError"),
    ("import no_such_dependency\n\ndef behave(env, conn, rng):\n    yield env.timeout(1)\n",
     "importing misuse_mod: ModuleNotFoundError: No module named 'no_such_dependency'"),
])
def test_misuse_is_a_process_error(tmp_path, code, problem):
    cfg = write(tmp_path, "misuse_mod", code)
    with pytest.raises(ProcessError, match="misuse_mod:behave") as info:
        simulate(cfg)
    assert problem in str(info.value)
    sys.modules.pop("misuse_mod", None)


@pytest.mark.parametrize("value, problem", [
    ("'behaviours'", "is not module:function"),
    ("'behaviours:1st'", "is not module:function"),
    ("'class:run'", "is not module:function"),
])
def test_process_names_are_checked_when_the_config_loads(tmp_path, value, problem):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"traffic:\n  process: {value}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert str(info.value).startswith(f"{cfg}:2: traffic.process: ") and problem in str(info.value)


def test_params_need_a_process_and_identifier_names(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("traffic:\n  params: {period_s: 4}\n")
    with pytest.raises(ConfigError, match="params without a process"):
        load_config(cfg)
    cfg.write_text("traffic:\n  process: m:f\n  params: {not-a-name: 4}\n")
    with pytest.raises(ConfigError, match="cannot be a keyword argument"):
        load_config(cfg)


# ----------------------------------------------------------------------------- the shipped example
def test_the_shipped_example_runs_and_keepalive_saves_its_batches():
    cfg = ROOT / "configs/examples/nightly-batch.yaml"
    bare = simulate(cfg, "connections=3", "duration=40m")
    kept = simulate(cfg, "connections=3", "duration=40m", "client.keepalive={idle: 300s, interval: 20s, count: 4}")
    down = rows(bare)
    assert sum(r["failed_requests"] for r in down) == sum(r["resets"] for r in down) > 0
    assert all(r["failed_requests"] == 0 for r in rows(kept))
    assert len(rows(kept)) == 3  # one connection per slot for the whole run
    assert sum(r["requests"] for r in rows(kept)) == 3 * 5 * 6  # six batches of five in 40 minutes

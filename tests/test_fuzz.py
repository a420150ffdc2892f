"""Fuzzing every input users give (issue 13, point 11): mutated shipped configs, hostile ``--set``
values and mutated ``inspect`` artefacts. Each case must end with exit 0 or 3 (results), or exit 2
and exactly one line on stderr; never a traceback, an internal error, a hang or runaway memory.

Hypothesis runs derandomized (a fixed seed, no example database), so CI sees the same cases every
time; ``SIM_FUZZ_EXAMPLES`` scales the number of cases per test (450 in all by default).
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import signal
from pathlib import Path

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sim.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").rglob("*.yaml"))
ARTEFACTS = sorted(p for p in (ROOT / "tests" / "fixtures" / "integrations").rglob("*")
                   if p.is_file() and p.suffix != ".source")
SCALE = int(os.environ.get("SIM_FUZZ_EXAMPLES", "150"))
#: a case that takes longer than this has hung (the guard is not a timing claim: cases take < 1 s)
CASE_TIMEOUT_S = 60
#: peak resident memory of the test process after any case
MAX_RSS_KB = 3 * 1024 * 1024
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=SCALE,
                suppress_health_check=list(HealthCheck))
#: small runs: the cases test input handling, not the model
SMALL = ["--set", "connections=3", "--set", "duration=10m", "--set", "replications=1"]


class _Hung(Exception):
    pass


def _alarm(signum, frame):
    raise _Hung()


def run_cli(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    """``main(argv)`` in this process, with output captured and a hang guard."""
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if stdin is not None:
                import sys

                saved, sys.stdin = sys.stdin, io.StringIO(stdin)
                try:
                    rc = main(argv)
                finally:
                    sys.stdin = saved
            else:
                rc = main(argv)
    except _Hung:
        raise AssertionError(f"no answer within {CASE_TIMEOUT_S} s: {argv}") from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, out.getvalue(), err.getvalue()


def check(argv: list[str], rc: int, out: str, err: str) -> None:
    event(f"{argv[0]} exit {rc}")  # the mix of outcomes: pytest --hypothesis-show-statistics
    what = f"{argv}\nexit {rc}\nstderr: {err[-2000:]}"
    assert "Traceback" not in err and "Traceback" not in out, what
    assert "internal error" not in err, what
    if rc == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), what
    else:
        assert rc in (0, 3), what
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < MAX_RSS_KB, f"memory ran away: {what}"


# ----------------------------------------------------------------------------- values
HOSTILE_TEXT = [
    "", "~", "null", "off", "on", "yes", "no", "true", "-1", "0", "1e400", "-1e400", ".nan", ".inf", "2**63",
    "9223372036854775808", "1" * 5000, "1.5", "350s", "5m", "1d", "-5s", "1e-300", "[1, 2]", "[]", "{}",
    "{a: 1}", "!!python/object/apply:os.getcwd []", "!!binary aGVsbG8=", "&a [*a]", "{{ .Values.x }}",
    "'\x00'", "\"\\x07\"", "[" * 600, "a: &a [1]\nb: *a", "aws-nlb-tcp", "kube-proxy-ipvs",
    "{idle: 60, interval: 10, count: 3}", "{enabled: 'no', idle: 60}", "{time: 0s}", "{profile: nope}",
    "[{leg: downstream}]", "[{at: 1m, for: 0s, leg: downstream}]", "[{leg: aws-nlb-tcp, packets: syn, action: rst}]",
    "[{at: -1, leg: nope, direction: up}]",
]
BOMB = "\n".join(["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
                 + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)])


def junk_values() -> st.SearchStrategy:
    scalars = st.one_of(
        st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(HOSTILE_TEXT),
        st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _set(node, path, value):
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()


# ----------------------------------------------------------------------------- configs
@FUZZ
@given(cfg=st.sampled_from(CONFIGS), data=st.data())
def test_mutated_shipped_configs(cfg, data, tmp_path_factory):
    raw = yaml.safe_load((ROOT / cfg).read_text())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = [p for p in _paths(raw) if p]
        path = data.draw(st.sampled_from(paths), label="path")
        op = data.draw(st.sampled_from(["replace", "delete", "add"]), label="op")
        value = data.draw(junk_values(), label="value")
        if op == "delete":
            _set(raw, path, _DELETE)
        elif op == "add":
            parent = raw
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent[data.draw(st.sampled_from(["_x", "extra", "idle", "sweep", "lb", "conditions"]))] = value
        else:
            _set(raw, path, value)
        if not isinstance(raw, dict):
            break
    path = tmp_path_factory.mktemp("fuzz") / "mutated.yaml"
    try:
        path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    except (yaml.YAMLError, UnicodeEncodeError, ValueError):
        return  # not representable as YAML text: nothing a user could write
    cmd = data.draw(st.sampled_from(["run", "sweep"]), label="command")
    argv = [cmd, str(path), *SMALL]
    if cmd == "sweep":
        argv += ["--executor", "serial", "--quiet", "--no-report", "--out", str(path.parent / "out")]
    check(argv, *run_cli(argv))


# ----------------------------------------------------------------------------- --set
KEYS = ["connections", "duration", "seed", "replications", "lb", "lb.idle_timeout", "lb.profile", "lb.late_packet",
        "lb.max_flows", "kernel.hz", "kernel.timers", "kernel.sysctl", "kernel.sysctl.net.ipv4.tcp_retries2",
        "client.keepalive", "client.keepalive.idle", "client.user_timeout", "envoy.listener.keepalive",
        "envoy.listener.socket_options", "envoy.listener.route_timeout", "envoy.upstream.keepalive.count",
        "envoy.flavor", "upstream.lb", "traffic.request_gap", "traffic.service_time", "traffic.ramp",
        "network.one_way_delay", "sweep", "sweep.envoy.listener.keepalive.idle", "sweep.conditions.kernel.hz",
        "sweep.replications", "faults", "faults.0.at", "sweep.conditions.faults", "nope", "_private", "lb.0", "a..b",
        ""]


@FUZZ
@given(cfg=st.sampled_from(CONFIGS), key=st.sampled_from(KEYS), text=st.one_of(st.sampled_from(HOSTILE_TEXT + [BOMB]),
                                                                                    st.text(max_size=30)))
def test_hostile_set_values(cfg, key, text):
    argv = ["run", cfg, *SMALL, "--set", f"{key}={text}"]
    check(argv, *run_cli(argv))


# ----------------------------------------------------------------------------- inspect
def _mutate_text(data, text: str) -> str:
    lines = text.splitlines(keepends=True) or [""]
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        op = data.draw(st.sampled_from(["drop_line", "dup_line", "truncate", "junk", "number", "swap_char"]))
        i = data.draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "drop_line" and len(lines) > 1:
            del lines[i]
        elif op == "dup_line":
            lines.insert(i, lines[i])
        elif op == "truncate":
            cut = data.draw(st.integers(0, len(lines[i])))
            lines = lines[:i] + [lines[i][:cut]]
        elif op == "junk":
            lines.insert(i, data.draw(st.sampled_from(HOSTILE_TEXT + ["{{ x }}", "$ ss -nte", "```", "---"])) + "\n")
        elif op == "number":
            lines[i] = "".join(data.draw(st.sampled_from(["9" * 30, "-1", "0", "1e9"])) if c.isdigit() else c
                               for c in lines[i])
        elif op == "swap_char" and lines[i]:
            j = data.draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + data.draw(st.sampled_from(list(":{}[]\"'-#\t \x00"))) + lines[i][j + 1:]
    return "".join(lines)


@FUZZ
@given(artefact=st.sampled_from(ARTEFACTS), data=st.data(),
       extra=st.sampled_from([[], ["--json"], ["--lb", "aws-nlb-tcp"], ["--json", "--fail-on-unsafe"]]))
def test_mutated_inspect_artefacts(artefact, data, extra):
    text = _mutate_text(data, artefact.read_text(errors="replace"))
    argv = ["inspect", "-", *extra]
    rc, out, err = run_cli(argv, stdin=text)
    if "--json" in extra and rc == 2:  # errors are JSON on stdout in --json mode, plus one line on stderr
        assert '"error"' in out, out
    check(argv, rc, out, err)


# ----------------------------------------------------------------------------- inspect CAPTURE.pcap
CAPTURES = sorted((ROOT / "tests" / "fixtures" / "pcap").glob("*.pcap*"))


def _mutate_bytes(data, raw: bytes) -> bytes:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        op = data.draw(st.sampled_from(["truncate", "flip", "field", "insert", "delete"]), label="op")
        i = data.draw(st.integers(0, max(0, len(buf) - 1)), label="at")
        if op == "truncate":
            del buf[i:]
        elif op == "flip" and buf:
            buf[i] ^= data.draw(st.integers(1, 255))
        elif op == "field":  # a length or timestamp field set to an extreme value
            buf[i:i + 4] = data.draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x00\x00\x00\x80",
                                                      b"\x07\x00\x00\x00", b"\x0c\x00\x00\x00"]))
        elif op == "insert":
            buf[i:i] = data.draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del buf[i:i + data.draw(st.integers(1, 64))]
    return bytes(buf)


@FUZZ
@given(capture=st.sampled_from(CAPTURES), data=st.data(),
       extra=st.sampled_from([[], ["--json"], ["--lb", "aws-nlb-tcp"], ["--json", "--fail-on-unsafe", "--lb",
                                                                          "aws-nlb-tcp"]]))
def test_mutated_captures(capture, data, extra, tmp_path_factory):
    """A damaged capture is one error line and exit 2 (with the partial report on stdout), never a
    traceback; with --json stdout is always one JSON document."""
    path = tmp_path_factory.mktemp("fuzz") / capture.name
    path.write_bytes(_mutate_bytes(data, capture.read_bytes()))
    argv = ["inspect", str(path), *extra]
    rc, out, err = run_cli(argv)
    if "--json" in extra:
        import json

        json.loads(out)
    check(argv, rc, out, err)

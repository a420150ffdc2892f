"""Hostile YAML through ``python -m sim run``: exit 2 with one line, never a hang or unbounded memory.

Each case runs the real command in a subprocess. The timeout is a guard against hangs (far above
the second or so each case takes), not a timing claim. The alias bombs are also held to a memory
bound: the child's peak RSS may exceed that of an ordinary bad config by at most ``BOMB_RSS_MARGIN``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 120
BOMB_RSS_MARGIN = 64 * 2**20


def _bomb(width: int = 10, levels: int = 10) -> str:
    """A billion-laughs document: ``levels`` anchors, each a list of ``width`` aliases of the previous."""
    rows = ["a0: &a0 [" + ", ".join(["x"] * width) + "]"]
    rows += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(rows) + f"\nname: *a{levels - 1}\n"


def _sim(args: list[str]) -> tuple[int, str, int]:
    """(exit code, stderr, peak RSS in bytes) of ``python -m sim ARGS``."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "sim", *args], stdout=out, stderr=err, cwd=ROOT,
                                env={**os.environ, "SIM_DEBUG": ""})
        guard = threading.Timer(HANG_GUARD_S, proc.kill)
        guard.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            guard.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        err.seek(0)
        return proc.returncode, err.read().decode("utf-8", "replace"), usage.ru_maxrss * 1024


def _assert_one_line_exit_2(code: int, err: str, *texts: str) -> None:
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and "Traceback" not in err, err
    for text in texts:
        assert text in err, err


#: name -> (file contents, the key the message names, text it contains)
CASES = {
    "unhashable_key": (b"name: x\n? [a, b]\n: 1\n", "[a, b]", "a key must be a plain value"),
    "flow_mapping_key": (b"lb: {{profile: x}: 1}\n", "lb.{profile: x}", "a key must be a plain value"),
    "nul_byte": (b"name: a\x00b\nlb: aws-nlb-tcp\n", "name", "control character U+0000"),
    "escape_byte": (b"lb: aws-nlb-tcp\nname: \x1b[31mred\n", "name", "control character U+001B"),
    "nested_600_flow": (b"lb: " + b"[" * 600 + b"]" * 600 + b"\n", "lb[0][0]", "nested deeper than"),
    "nested_600_block": ("".join(f"{'  ' * i}k{i}:\n" for i in range(600)).encode(), "k0.k1", "nested deeper than"),
    "tag_on_mapping": (b"lb: !!python/object/apply:os.getcwd []\n", "lb", "YAML tag"),
    "tag_on_scalar": (b"name: !!python/name:os.system x\n", "name", "YAML tag"),
    "local_tag_on_mapping": (b"lb: !nlb {profile: aws-nlb-tcp}\n", "lb", "YAML tag"),
    "recursive_alias": (b"lb: &a [*a]\n", "lb[0]", "nested deeper than"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_yaml_file_exit_2_one_line(name, tmp_path):
    data, key, text = CASES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(data)
    code, err, _ = _sim(["run", str(path)])
    _assert_one_line_exit_2(code, err, text)
    assert re.match(rf"error: {re.escape(str(path))}:[0-9]+: {re.escape(key)}", err), err


@pytest.mark.parametrize("name", ["nested_600_flow", "tag_on_mapping", "recursive_alias", "unhashable_key"])
def test_hostile_yaml_in_a_set_value(name):
    data, _, _ = CASES[name]
    value = data.decode().split(":", 1)[1].strip() if name != "unhashable_key" else "{? [a, b] : 1}"
    code, err, _ = _sim(["run", "configs/nlb.yaml", "--set", f"lb={value}"])
    _assert_one_line_exit_2(code, err, "--set lb")


def test_alias_bombs_exit_2_in_bounded_memory(tmp_path):
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: x\nconections: 3\n")
    code, err, base_rss = _sim(["run", str(plain)])
    _assert_one_line_exit_2(code, err, "unknown key")

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(_bomb())
    code, err, rss = _sim(["run", str(bomb)])
    _assert_one_line_exit_2(code, err, "alias bomb", str(bomb))
    assert rss < base_rss + BOMB_RSS_MARGIN, (rss, base_rss)

    flow = "{" + _bomb().strip().replace("\n", ", ") + "}"
    code, err, rss = _sim(["run", str(plain), "--set", f"traffic={flow}"])
    _assert_one_line_exit_2(code, err, "alias bomb", "--set traffic")
    assert rss < base_rss + BOMB_RSS_MARGIN, (rss, base_rss)

"""Every bad config gives exit 2 and one line naming the key (tests/bad_configs/*.yaml).

Each file's first line is ``# expect: <text the message must contain> | <dotted key>``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.cli import main

BAD = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


def _expect(path: Path) -> tuple[str, str]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
    assert first.startswith("# expect:"), f"{path.name}: first line must be '# expect: text | key'"
    text, _, key = first[len("# expect:"):].partition("|")
    return text.strip(), key.strip()


def test_corpus_is_large_enough():
    assert len(BAD) >= 20


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_exit_2_one_line(path, capsys):
    text, key = _expect(path)
    code = main(["run", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert err.startswith(f"error: {path}"), err
    assert text in err, err
    assert key in err, err


@pytest.mark.parametrize("item", ["nokey", "=3", "lb.idle_timeout=-5s", "connections=[1, 2]", "kernel.hz=251"])
def test_bad_set_is_exit_2(item, capsys):
    assert main(["run", "configs/nlb.yaml", "--set", item]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err

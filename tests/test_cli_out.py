"""--out: a folder that cannot take the results, or holds someone else's files, is refused with one
line and exit 2, before any simulating; a bad Dask scheduler fails fast."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

import sim.output
from sim.cli import main

SMALL = str(Path(__file__).with_name("sweep_small.yaml"))
FAST = ["--set", "connections=3", "--set", "duration=10m"]
SWEEP = ["sweep", SMALL, "--executor", "serial", "--quiet", "--no-report", *FAST]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def _no_simulation(monkeypatch):
    import sim.execution.runner
    import sim.execution.sweep

    def boom(*a, **k):
        raise AssertionError("simulated before checking --out")

    monkeypatch.setattr(sim.execution.runner, "run_scenario", boom)
    monkeypatch.setattr(sim.execution.sweep, "expand", boom)


@pytest.mark.parametrize("cmd", ["run", "sweep"])
def test_out_that_is_a_file_is_refused(tmp_path, capsys, monkeypatch, cmd):
    target = tmp_path / "a-file"
    target.write_text("mine\n")
    _no_simulation(monkeypatch)
    args = ["run", SMALL, *FAST] if cmd == "run" else SWEEP
    assert main([*args, "--out", str(target)]) == 2
    assert "is a file, not a folder" in _one_line(capsys)
    assert target.read_text() == "mine\n"


@pytest.mark.parametrize("cmd", ["run", "sweep"])
@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.ENOSPC])
def test_unwritable_out_is_refused_before_simulating(tmp_path, capsys, monkeypatch, cmd, code):
    def fail(fd, data):
        raise OSError(code, "simulated")

    monkeypatch.setattr(sim.output, "_write_bytes", fail)
    _no_simulation(monkeypatch)
    args = ["run", SMALL, *FAST] if cmd == "run" else SWEEP
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    err = _one_line(capsys)
    assert "cannot write results" in err and "internal error" not in err


def test_a_disk_that_fills_up_during_a_sweep_stops_it_with_one_line(tmp_path, capsys, monkeypatch):
    real = sim.output._write_bytes
    writes = []

    def fill(fd, data):
        writes.append(1)
        if len(writes) > 6:  # the folder checks and the first task pass, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(sim.output, "_write_bytes", fill)
    out = tmp_path / "o"
    assert main([*SWEEP, "--out", str(out)]) == 2
    assert "no space left on the device" in _one_line(capsys)
    assert len(writes) < 12  # it stopped, rather than trying every remaining task


def test_a_folder_with_other_files_is_refused_unless_overwrite(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    (mine / "parts").mkdir()
    (mine / "parts" / "x.parquet").write_text("keep me too\n")
    assert main([*SWEEP, "--out", str(mine)]) == 2
    err = _one_line(capsys)
    assert "not a keepalive-sim results folder" in err and "--overwrite" in err
    assert main(["run", SMALL, *FAST, "--out", str(mine)]) == 2
    capsys.readouterr()
    assert (mine / "parts" / "x.parquet").read_text() == "keep me too\n"
    assert main([*SWEEP, "--out", str(mine), "--overwrite"]) == 0
    assert (mine / "notes.txt").read_text() == "keep me\n"


def test_empty_and_own_folders_are_fine_but_run_and_sweep_folders_do_not_mix(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*SWEEP, "--out", str(empty)]) == 0
    assert main([*SWEEP, "--out", str(empty)]) == 0  # our own sweep folder again
    assert main(["run", SMALL, *FAST, "--out", str(empty)]) == 2
    assert "holds the results of `sweep`" in capsys.readouterr().err
    assert main(["run", SMALL, *FAST, "--out", str(tmp_path / "r")]) == 0
    assert main(["run", SMALL, *FAST, "--out", str(tmp_path / "r")]) == 0
    assert main([*SWEEP, "--out", str(tmp_path / "r")]) == 2


def test_a_bad_dask_scheduler_fails_fast_with_exit_2(tmp_path, capsys, monkeypatch):
    pytest.importorskip("dask.distributed")
    import sim.execution.executors as ex

    monkeypatch.setattr(ex, "DASK_CONNECT_TIMEOUT_S", 1)
    code = main(["sweep", SMALL, "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9", "--quiet",
                 "--no-report", "--out", str(tmp_path / "o"), *FAST])
    assert code == 2
    assert "cannot reach the Dask scheduler within 1 s" in capsys.readouterr().err

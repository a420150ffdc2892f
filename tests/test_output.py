"""sim.output and sim.results.folder: JSON without NaN, the JSON text of table cells, errors that cross process
boundaries, file modes, and results folders written before the marker existed."""

from __future__ import annotations

import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

import sim.output
from sim.output import OutputError, atomic_write, dumps, file_mode, from_json_text, json_text
from sim.results.folder import MARKER, claim_folder, read_marker


def test_json_has_null_for_nan_and_infinity_and_plain_numbers_for_numpy():
    value = {"n": np.int64(3), "x": np.float64("nan"), "t": (1, np.inf, -math.inf), 4: "k"}
    assert json.loads(dumps(value)) == {"n": 3, "x": None, "t": [1, None, None], "4": "k"}
    assert json_text(value) == '{"4":"k","n":3,"t":[1,null,null],"x":null}'  # sorted, no spaces


def test_cells_come_back_from_their_json_text():
    mapping = {"interval": 20, "idle": 300}
    assert from_json_text(json_text(mapping)) == mapping
    assert from_json_text(json_text(mapping), hashable=True) == '{"idle":300,"interval":20}'
    assert from_json_text(json_text(2**128 - 1)) == 2**128 - 1  # integers exact
    assert from_json_text(None) is None
    assert math.isnan(from_json_text(math.nan))  # a missing cell stays missing


def test_an_output_error_survives_pickling_with_its_fields():
    # a pool worker's error reaches the parent intact: the same one line
    err = OutputError("cannot write results: no space left on the device", file="results/x",
                      allowed="a writable directory with free space; choose another with --out")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is OutputError and str(back) == str(err)
    assert (back.problem, back.file, back.allowed) == (err.problem, err.file, err.allowed)


def test_file_mode_without_proc_comes_from_the_umask(monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(sim.output, "open", no_proc, raising=False)  # found before the builtin
    old = os.umask(0o027)
    try:
        assert file_mode() == 0o640
        assert os.umask(0o027) == 0o027  # and the umask is left as it was
    finally:
        os.umask(old)


def test_a_file_where_a_folder_should_be_is_named_as_such(tmp_path):
    (tmp_path / "a-file").write_text("mine\n")
    with pytest.raises(OutputError) as exc:
        atomic_write(tmp_path / "a-file" / "summary.json", "{}")
    assert "a file is in the way (the results folder must be a directory)" in str(exc.value)
    assert (tmp_path / "a-file").read_text() == "mine\n"


def test_other_write_errors_give_the_system_s_words(tmp_path):
    with pytest.raises(OutputError) as exc:
        atomic_write(tmp_path / ("x" * 300), "{}")  # longer than any file-name limit
    assert "cannot write results: File name too long" in str(exc.value)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def _old_folder(path: Path, *files: str) -> Path:
    """A results folder written before the marker existed: only its files say what it is."""
    path.mkdir()
    for name in files:
        if name == "parts":
            (path / name).mkdir()
        else:
            (path / name).write_text("{}\n")
    return path


@pytest.mark.parametrize("files, kind", [(("config.resolved.yaml", "sweep.json"), "sweep"),
                                         (("config.resolved.yaml", "parts"), "sweep"),
                                         (("config.resolved.yaml", "summary.json"), "run"),
                                         (("config.resolved.yaml",), None),
                                         (("notes.txt",), None)])
def test_folders_from_before_the_marker_are_recognised_by_their_files(tmp_path, files, kind):
    assert read_marker(_old_folder(tmp_path / "o", *files)) == ({"kind": kind} if kind else None)


def test_an_old_sweep_folder_takes_a_sweep_but_not_a_run(tmp_path):
    folder = _old_folder(tmp_path / "o", "config.resolved.yaml", "sweep.json")
    with pytest.raises(OutputError) as exc:
        claim_folder(folder, "run", "nlb")
    assert "holds the results of `sweep`, not of `run`" in str(exc.value)
    assert claim_folder(folder, "sweep", "nlb") == {"kind": "sweep"}
    assert json.loads((folder / MARKER).read_text())["kind"] == "sweep"  # marked from now on


def test_an_unreadable_marker_is_refused_unless_overwrite(tmp_path):
    folder = tmp_path / "o"
    folder.mkdir()
    (folder / MARKER).write_text("{not json")
    assert read_marker(folder) == {"kind": "unknown"}
    with pytest.raises(OutputError, match="holds the results of `unknown`"):
        claim_folder(folder, "sweep", "nlb")
    assert claim_folder(folder, "sweep", "nlb", overwrite=True) == {"kind": "unknown"}
    assert read_marker(folder)["kind"] == "sweep"

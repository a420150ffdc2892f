"""notebooks/analysis.ipynb runs top to bottom (on a tiny sweep), so it never rots."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def test_analysis_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("SIM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SIM_NOTEBOOK_TINY", "1")
    nb = nbformat.read(Path("notebooks/analysis.ipynb"), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": os.getcwd()}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # heatmap, detection, cost vs safety, active flows (+ NLCU)

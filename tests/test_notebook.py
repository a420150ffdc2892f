"""notebooks/analysis.ipynb runs top to bottom (on a tiny sweep), so it never rots."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def test_analysis_notebook_executes(tmp_path, monkeypatch):
    # `jupyter execute notebooks/analysis.ipynb` (the README's command) starts the kernel in notebooks/;
    # SIM_CONFIG keeps its default, relative to the repository root
    monkeypatch.setenv("SIM_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("SIM_NOTEBOOK_TINY", "1")
    monkeypatch.delenv("SIM_CONFIG", raising=False)
    nb = nbformat.read(Path("notebooks/analysis.ipynb"), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(os.getcwd(), "notebooks")}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # heatmap, detection, cost vs safety, active flows (+ NLCU)
    texts = [o["data"].get("text/markdown", "") for o in outputs if "data" in o]
    rec = next(t for t in texts if "recommended" in t)
    assert "{" not in rec and "envoy.listener.keepalive.idle=" in rec  # words, not a raw dict

"""The docs cite only what the repository holds: every relative link resolves, nothing points outside."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "sim").rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_resolve(doc):
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{doc.relative_to(ROOT)} links to {target}, which does not exist"
        assert ROOT in path.parents or path == ROOT, f"{doc.relative_to(ROOT)} links outside the repository: {target}"


def test_nothing_cites_files_outside_the_repository():
    hits = []
    folders = ("docs", "sim", "tests", "configs", "bench", "notebooks")
    for path in [*ROOT.glob("*.md"), *(p for f in folders for p in (ROOT / f).rglob("*"))]:
        if not path.is_file() or path.name == "test_docs.py":
            continue
        if path.suffix in (".md", ".py", ".yaml", ".txt", ".json", ".ipynb") and "../shared" in path.read_text(
                "utf-8", "replace"):
            hits.append(str(path.relative_to(ROOT)))
    assert not hits, f"these cite ../shared (outside the repository): {hits}"


def test_every_record_column_is_documented():
    from sim.facts.names import COLUMNS

    text = (ROOT / "docs" / "outputs.md").read_text()
    missing = [c for c in COLUMNS if f"`{c}`" not in text]
    assert not missing, f"record columns missing from docs/outputs.md: {missing}"

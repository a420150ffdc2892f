"""Golden records (tests/golden/): the records of three seeded configs are pinned column by column,
so a change to the numbers is always made on purpose (`python tests/golden/regenerate.py --write`)."""

from __future__ import annotations

import json

import pytest

from tests.golden.regenerate import CASES, GOLDEN, digests, moved


@pytest.mark.parametrize("name", sorted(CASES))
def test_records_match_the_golden_digests(name):
    golden = json.loads(GOLDEN.read_text())[name]
    cols = moved(golden, digests(name))
    assert not cols, (f"{name}: these columns moved: {', '.join(cols)}. If that is intended, run "
                      "`python tests/golden/regenerate.py --write` and commit tests/golden/records.json")


def test_moved_names_the_columns_that_changed():
    old = {"rows": 2, "columns": {"a": "1", "b": "2"}}
    assert moved(old, {"rows": 2, "columns": {"a": "1", "b": "3", "c": "4"}}) == ["b", "c"]
    assert moved(old, {"rows": 3, "columns": {"a": "1"}}) == ["rows", "b"]

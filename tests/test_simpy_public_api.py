"""SimPy is used through its public API only (issue 14 point 2): no code in sim/ touches an underscore
attribute of a SimPy object. The check is textual, comments included, over every file in sim/."""

from __future__ import annotations

from pathlib import Path

SIM = Path(__file__).resolve().parent.parent / "sim"
#: SimPy's private attributes (Environment._queue, _eid, _now; Event._ok, _value, _defused ...)
FORBIDDEN = ("env._", "._queue", "._eid", "._now", "._defused")


def test_no_simpy_private_attribute_is_named_in_sim():
    hits = [f"{path.relative_to(SIM.parent)}:{n}: {s}" for path in sorted(SIM.rglob("*"))
            if path.is_file() and path.suffix in (".py", ".pyi", ".md", ".txt", ".yaml")
            for n, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1)
            for s in FORBIDDEN if s in line]
    assert not hits, "SimPy private attributes named in sim/:\n" + "\n".join(hits)


def test_the_check_sees_what_it_forbids(tmp_path):
    # a test that cannot fail is a defect: the same scan finds the strings where they are
    line = "        heappush(self." + "_queue, entry)  # env" + "._now"
    assert [s for s in FORBIDDEN if s in line] == ["env._", "._queue", "._now"]

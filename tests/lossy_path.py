"""A test hook: a Path that loses (or refuses) chosen segments at their sender, standing in for a
fault or a middlebox that drops them (docs/model.md, "Lifecycle")."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from sim import native
from sim.model import scenario
from sim.model.network import Path
from sim.model.segment import RST, Seg

#: The hook replaces ``scenario.Path`` with a Python subclass, which the compiled core neither
#: looks up at run time nor allows; these tests run on the plain-Python core (tests/test_native.py
#: proves the compiled one computes the same), until ``faults:`` can provoke the same losses.
pure_core_only = pytest.mark.skipif(native.COMPILED, reason="the lossy-path hook needs the plain-Python core")

#: ``rule(path, sock, seg, now_s) -> None | "drop" | "rst"``: what happens to a segment sent now
Rule = Callable[[Path, object, Seg, float], "str | None"]


@contextmanager
def lossy(monkeypatch: pytest.MonkeyPatch, rule: Rule) -> Iterator[None]:
    """Every path the world builds while this is active applies ``rule`` to its hosts' segments."""

    class LossyPath(Path):
        __slots__ = ()

        def __call__(self, sock, seg, pos=-1, step=1, t_s=0.0):
            if sock is not None and pos < 0:
                verdict = rule(self, sock, seg, self.sched.now_s)
                if verdict is not None:
                    other = self.b if sock is self.a else self.a
                    other.segment_lost()
                    if verdict == "rst":  # refused where it was sent: an RST comes straight back
                        self.sched.deliver_at(self.sched.now_s + self.hop_s, Seg(RST, seg.ack, 0), sock)
                    return False
            return Path.__call__(self, sock, seg, pos, step, t_s)

    monkeypatch.setattr(scenario, "Path", LossyPath)
    yield

"""Progress of long work on stderr: a tqdm bar on a terminal; elsewhere (CI logs, files, pipes) a
plain line every ``PLAIN_EVERY_S`` seconds, such as ``sweep: 40/128 runs done, 2 failed, eta 1m20s``."""

from __future__ import annotations

import sys
import time
from typing import Any

#: seconds between two plain progress lines when stderr is not a terminal
PLAIN_EVERY_S = 10.0


def duration_text(seconds: float) -> str:
    """``80`` → ``1m20s``; ``7500`` → ``2h05m``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class PlainProgress:
    """Counts done and failed units; prints a line at most every ``every_s`` seconds."""

    def __init__(self, total: int, initial: int, label: str, unit: str, every_s: float, file: Any) -> None:
        self.total, self.done, self.failed = total, initial, 0
        self.label, self.unit, self.every_s, self.file = label, unit, every_s, file
        self.start_done = initial
        self.t0 = self.last = time.monotonic()
        self.printed = False

    def update(self, n: int = 1, failed: bool = False) -> None:
        self.done += n
        self.failed += int(failed)
        now = time.monotonic()
        if now - self.last >= self.every_s:
            self.last = now
            self._line(now)

    def _line(self, now: float, final: bool = False) -> None:
        text = f"{self.label}: {self.done}/{self.total} {self.unit}s done"
        if self.failed:
            text += f", {self.failed} failed"
        ran = self.done - self.start_done
        if final:
            text += f" in {duration_text(now - self.t0)}"
        elif ran and self.done < self.total:
            text += f", eta {duration_text((now - self.t0) / ran * (self.total - self.done))}"
        print(text, file=self.file, flush=True)
        self.printed = True

    def close(self) -> None:
        if self.printed:  # a short run prints nothing at all
            self._line(time.monotonic(), final=True)


class _Bar:
    """tqdm, with the same ``update(n, failed)`` as PlainProgress."""

    def __init__(self, total: int, initial: int, label: str, unit: str) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, initial=initial, unit=unit, desc=label, file=sys.stderr)
        self.failed = 0

    def update(self, n: int = 1, failed: bool = False) -> None:
        if failed:
            self.failed += 1
            self.bar.set_postfix_str(f"{self.failed} failed")
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


def progress(total: int, initial: int = 0, *, quiet: bool = False, label: str = "sweep", unit: str = "run") -> Any:
    """A progress reporter (``update``, ``close``), or None when ``quiet``."""
    if quiet:
        return None
    if sys.stderr.isatty():
        return _Bar(total, initial, label, unit)
    return PlainProgress(total, initial, label, unit, PLAIN_EVERY_S, sys.stderr)

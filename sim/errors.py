"""User-facing errors: one line, exit code 2 (DESIGN §4)."""

from __future__ import annotations

import re

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` safe for a one-line message: control characters escaped, long values shortened."""
    text = _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ConfigError(Exception):
    """Bad config or usage: ``FILE:LINE: key: problem (allowed: ...)``."""

    def __init__(self, problem: str, *, file: str = "", line: int | None = None, key: str = "",
                 allowed: str = "") -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.key = key
        self.allowed = allowed
        super().__init__(str(self))

    def __str__(self) -> str:
        where = one_line(self.file or "<config>", 200)
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: "
        if self.key:
            text += f"{one_line(self.key, 200)}: "
        text += one_line(self.problem, 600)
        if self.allowed:
            text += f" (allowed: {one_line(self.allowed, 600)})"
        return text

"""User-facing errors: one line, exit code 2 (DESIGN §4)."""

from __future__ import annotations


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
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        text = f"{where}: "
        if self.key:
            text += f"{self.key}: "
        text += self.problem
        if self.allowed:
            text += f" (allowed: {self.allowed})"
        return text

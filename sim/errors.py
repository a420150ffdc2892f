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


class ProcessError(ConfigError):
    """A user-written traffic process (``traffic.process``) could not be loaded or raised: one line
    naming ``module:function`` and the error, exit code 2 like any config error.

    Built from its message alone (SimPy re-raises a process's exception as ``type(exc)(*exc.args)``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    def __str__(self) -> str:
        return one_line(self.problem, 900)

    @classmethod
    def of(cls, target: str, what: str) -> ProcessError:
        """``traffic.process MODULE:FUNCTION: WHAT``."""
        return cls(f"traffic.process {target}: {what}")

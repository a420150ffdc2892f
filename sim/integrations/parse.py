"""Input kind detection for ``inspect``, and the entry points ``parse_file`` / ``parse_text``.

Reads what users actually have, not our YAML. The kinds live in their own modules:
:mod:`envoyfilter`, :mod:`destinationrule` (and mesh config), :mod:`config_dump`, :mod:`ss`
(and netstat), :mod:`sysctl`; :mod:`paste` cleans prompts, heredocs and fences first and refuses
Helm leftovers. Bad input is a :class:`~sim.errors.ConfigError` (exit 2) saying what was expected.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sim.config.yamlio import MAX_BYTES
from sim.errors import ConfigError
from sim.integrations.config_dump import from_envoy_objects, load_json, socket_options_excerpt
from sim.integrations.manifests import parse_yaml
from sim.integrations.model import ALLOWED_INPUTS, HopDecl, Parsed, SockOpt, SsConn
from sim.integrations.paste import check_template_leftovers, clean_paste
from sim.integrations.ss import looks_like_netstat, looks_like_ss, parse_ms_timer, parse_netstat, parse_ss
from sim.integrations.sysctl import looks_like_sysctl, parse_sysctl

__all__ = ["ALLOWED_INPUTS", "HopDecl", "Parsed", "SockOpt", "SsConn", "parse_file", "parse_ms_timer", "parse_text",
           "read_text"]


def read_text(path: str) -> tuple[str, str]:
    """(text, display name) of FILE, ``-`` meaning stdin. ConfigError when unreadable."""
    if path == "-":
        return sys.stdin.read(MAX_BYTES + 1), "<stdin>"
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(MAX_BYTES * 4 + 1)  # UTF-8 is at most 4 bytes a character
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=path, allowed=ALLOWED_INPUTS) from None
    try:
        return data.decode("utf-8"), path
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=path, line=line,
                          allowed=ALLOWED_INPUTS) from None


def parse_file(path: str) -> Parsed:
    """Read FILE (or stdin for ``-``), detect its kind and parse it."""
    text, name = read_text(path)
    return parse_text(text, name)


def parse_text(text: str, file: str) -> Parsed:
    """Detect the kind of ``text`` and parse it. Order matters: JSON first, then the line formats
    (``ss``, ``netstat`` and sysctl lines are also valid YAML scalars), YAML last."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{len(text):,} characters is too large to read", file=file,
                          allowed=f"at most {MAX_BYTES // (1024 * 1024)} MiB")
    if not text.strip():
        raise ConfigError("empty input", file=file, allowed=ALLOWED_INPUTS)
    text, notes = clean_paste(text)
    if not text.strip():
        raise ConfigError("nothing left to read once prompts and other commands' output are removed", file=file,
                          allowed=ALLOWED_INPUTS)
    check_template_leftovers(text, file)
    parsed = _parse(text, file)
    parsed.notes = notes + parsed.notes
    return parsed


def _parse(text: str, file: str) -> Parsed:
    if text.lstrip()[:1] in ("{", "[", '"'):
        data, repaired = load_json(text, file)
        if data is not None:
            parsed = socket_options_excerpt(data, file, None) or from_envoy_objects(data, file, None)
            if repaired:
                parsed.notes.append(f"read as a pasted excerpt ({repaired})")
            return parsed
    if looks_like_ss(text):
        return parse_ss(text, file)
    if looks_like_netstat(text):
        return parse_netstat(text, file)
    if looks_like_sysctl(text):
        return parse_sysctl(text, file)
    return parse_yaml(text, file)

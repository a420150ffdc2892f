"""Safe, bounded YAML with line numbers: the one reader for configs, ``--set`` values and ``inspect``.

Every key's line is recorded by its path (``('lb', 'idle_timeout')``, list items by index), so that
errors can say ``FILE:LINE: key``. Hostile input is refused with a ConfigError (exit 2) instead of
hanging or eating memory:

* documents larger than ``MAX_BYTES``;
* NUL and other control characters (PyYAML's own message spans two lines and names no key);
* nesting deeper than ``MAX_DEPTH`` (PyYAML's composer recurses once per level and would hit
  Python's recursion limit, and a billion-laughs alias chain is deep as well as wide);
* more than ``MAX_NODES`` values after alias expansion (a "billion laughs" bomb expands
  exponentially: ten aliases of ten aliases ... grow to gigabytes from a few hundred bytes);
* an explicit tag on a mapping or a list (``!!python/object/apply:...``), which the line-recording
  constructor would otherwise silently ignore; and any non-standard tag on a scalar;
* keys that are not plain scalars (``? [a, b]``), duplicate keys, and integers too long to convert.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

from sim.errors import ConfigError

Lines = dict[tuple, int]

#: the largest document read (bytes of text); a config is a few KB, a mesh's manifests a few MB
MAX_BYTES = 32 * 1024 * 1024
#: the deepest nesting of mappings and lists
MAX_DEPTH = 100
#: values constructed per document, aliases expanded
MAX_NODES = 1_000_000

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "timestamp"))
#: what YAML does not allow in a document (PyYAML's Reader.NON_PRINTABLE): control characters
_CONTROL = re.compile("[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\U00010000-\U0010ffff]")


def dotted(path: tuple) -> str:
    """``('lb', 0, 'profile')`` → ``lb[0].profile``."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


class _DepthComposer(Composer):
    """PyYAML's composer with a nesting limit, checked as each collection starts (before recursing)."""

    def __init__(self) -> None:
        super().__init__()
        self.sim_depth = 0
        self.sim_file = ""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.sim_depth += 1
        try:
            if self.sim_depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=self.sim_file,
                                  line=mark.line + 1, allowed=f"at most {MAX_DEPTH} levels of mappings and lists")
            return super().compose_node(parent, index)
        finally:
            self.sim_depth -= 1


class _Loader(Reader, Scanner, Parser, _DepthComposer, SafeConstructor, Resolver):
    """SafeLoader with the depth-limited composer."""

    def __init__(self, stream: str, file: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _DepthComposer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self.sim_file = file


class _Builder:
    """Turns composed nodes into plain Python values, recording lines and counting values."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.nodes = 0

    def build(self, node: yaml.Node, path: tuple, lines: Lines, depth: int = 0) -> Any:
        self.nodes += 1
        line = node.start_mark.line + 1
        if self.nodes > MAX_NODES:
            raise ConfigError(f"expands to more than {MAX_NODES:,} values (an alias bomb?)", file=self.file,
                              line=line, key=dotted(path), allowed="a document without exponential aliases")
        if depth > MAX_DEPTH:  # aliases can nest a document deeper than it is written
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels (through aliases)", file=self.file,
                              line=line, key=dotted(path), allowed=f"at most {MAX_DEPTH} levels")
        lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise self._tag_error(node, path)
            self.loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
            out: dict = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    raise ConfigError("a key must be a plain value, not a mapping or a list", file=self.file,
                                      line=knode.start_mark.line + 1, key=dotted(path),
                                      allowed="names such as idle_timeout")
                key = self._scalar(knode, path)
                if isinstance(key, bool):  # YAML 1.1 reads a bare `on`/`off`/`yes` key as a bool
                    key = knode.value
                elif not isinstance(key, (str, int)):
                    key = knode.value  # a date or float as a key stays the text it was written as
                if key in out:
                    raise ConfigError("duplicate key", file=self.file, line=knode.start_mark.line + 1,
                                      key=dotted(path + (key,)))
                lines[path + (key,)] = knode.start_mark.line + 1
                out[key] = self.build(vnode, path + (key,), lines, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                raise self._tag_error(node, path)
            return [self.build(v, path + (i,), lines, depth + 1) for i, v in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: tuple) -> Any:
        if node.tag not in _SCALAR_TAGS:
            raise self._tag_error(node, path)
        try:
            return self.loader.construct_object(node, deep=True)
        except ValueError as exc:  # int('9' * 5000): "Exceeds the limit (4300 digits) ..."
            text = node.value if len(node.value) <= 20 else node.value[:12] + "..."
            raise ConfigError(f"{text!r} cannot be read as a number ({str(exc).split(';')[0]})", file=self.file,
                              line=node.start_mark.line + 1, key=dotted(path),
                              allowed="numbers of at most 4,300 digits") from None

    def _tag_error(self, node: yaml.Node, path: tuple) -> ConfigError:
        return ConfigError(f"YAML tag {node.tag!r} is not allowed", file=self.file, line=node.start_mark.line + 1,
                           key=dotted(path), allowed="plain YAML values, without ! tags")


def _precheck(text: str, file: str) -> None:
    if len(text) > MAX_BYTES:
        raise ConfigError(f"{len(text):,} characters is too large to read", file=file,
                          allowed=f"at most {MAX_BYTES // (1024 * 1024)} MiB")
    m = _CONTROL.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        col = m.start() - (text.rfind("\n", 0, m.start()) + 1) + 1
        raise ConfigError(f"control character U+{ord(m.group()):04X} at column {col}", file=file, line=line,
                          allowed="printable text, tabs and newlines")


def _yaml_error(exc: yaml.YAMLError, text: str, file: str, what: str) -> ConfigError:
    mark = getattr(exc, "context_mark", None) or getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    line = mark.line + 1 if mark else None
    key = ""
    if mark is not None:
        rows = text.splitlines()
        src = rows[mark.line] if mark.line < len(rows) else ""
        m = re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)\s*:", src)
        key = m.group(1) if m else ""
    return ConfigError(f"{what}: {problem}", file=file, line=line, key=key)


def read_yaml_docs(text: str, file: str, what: str = "invalid YAML") -> list[tuple[Any, Lines]]:
    """Every document of a YAML stream, each with its key → line map; empty documents are left out.
    ``what`` starts the message of a syntax error."""
    _precheck(text, file)
    try:
        loader = _Loader(text, file)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file, what) from None
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            lines: Lines = {}
            docs.append((_Builder(loader, file).build(node, (), lines), lines))
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, text, file, what) from None
    except RecursionError:  # a guard above should have caught it first; never a traceback
        raise ConfigError(f"nested too deeply to read (more than {MAX_DEPTH} levels)", file=file) from None
    finally:
        loader.dispose()
    return [(d, ln) for d, ln in docs if d is not None]


def read_yaml(text: str, file: str) -> tuple[Any, Lines]:
    """One YAML document and its key → line map (``{}`` for an empty document)."""
    docs = read_yaml_docs(text, file)
    if len(docs) > 1:
        raise ConfigError("more than one YAML document", file=file, allowed="a single document (no `---` between)")
    return docs[0] if docs else ({}, {})

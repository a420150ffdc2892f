"""Safe, bounded YAML with line numbers: the one reader for configs, ``--set`` values and ``inspect``.

Every key's line is recorded by its path (``('lb', 'idle_timeout')``, list items by index), so that
errors can say ``FILE:LINE: key``. Hostile input is refused with a ConfigError (exit 2) instead of
hanging or eating memory:

* documents larger than ``MAX_BYTES``;
* NUL and other control characters (PyYAML's own message spans two lines and names no key);
* nesting deeper than ``MAX_DEPTH`` (PyYAML's composer recurses once per level and would hit
  Python's recursion limit, and a billion-laughs alias chain is deep as well as wide);
* more than ``MAX_NODES`` values in all, or more than ``MAX_ALIAS_VALUES`` values reached through
  aliases (a "billion laughs" bomb expands exponentially: ten aliases of ten aliases ... grow to
  gigabytes from a few hundred bytes; stopping at a small alias budget keeps time and memory low);
* an explicit tag on a mapping or a list (``!!python/object/apply:...``), which the line-recording
  constructor would otherwise silently ignore; and any non-standard tag on a scalar;
* keys that are not plain scalars (``? [a, b]``), duplicate keys, and integers too long to convert.

Booleans and floats follow YAML 1.2 (the core schema), not PyYAML's YAML 1.1: only ``true``/``false``
are booleans, so ``yes``, ``no``, ``on`` and ``off`` stay words (each key then decides whether it
accepts them: ``keepalive: off`` does, ``retry_on_reset: yes`` does not); and ``1e-3`` or ``1e400``
are floats rather than strings. Integers keep YAML 1.1's forms (``100_000``, ``0x1f``).
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
#: values constructed again because an alias repeats them (``<<: *base`` merges are a few dozen)
MAX_ALIAS_VALUES = 100_000

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


_BOOL_TAG = "tag:yaml.org,2002:bool"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _CoreResolver(Resolver):
    """PyYAML's resolver with YAML 1.2 booleans (true/false only) and floats (``1e-3``, no ``1:30.5``)."""


_CoreResolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in pairs if tag not in (_BOOL_TAG, _FLOAT_TAG)]
    for first, pairs in Resolver.yaml_implicit_resolvers.items()
}
_CoreResolver.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_CoreResolver.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?
               |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
               |[-+]?\.(?:inf|Inf|INF)
               |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))
# Resolvers are tried in order and the first match wins: floats must come before ints for "1e3"
for _pairs in _CoreResolver.yaml_implicit_resolvers.values():
    _pairs.sort(key=lambda pair: pair[0] != _FLOAT_TAG)


def short_path(path: tuple | list, keep: int = 6) -> str:
    """``dotted`` for a message: a path deeper than ``keep`` levels shows its first and last keys."""
    path = tuple(path)
    if len(path) <= keep:
        return dotted(path)
    return f"{dotted(path[: keep - 2])}...({len(path) - keep + 2} more)...{dotted(path[-2:])}"


def node_text(node: yaml.Node, limit: int = 40) -> str:
    """The YAML text a node was written as (for a key that is a mapping or a list), shortened."""
    start, end = node.start_mark, node.end_mark
    text = start.buffer[start.index:end.index] if start.buffer is not None else str(node.value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _DepthComposer(Composer):
    """PyYAML's composer with a nesting limit, checked as each collection starts (before recursing)."""

    def __init__(self) -> None:
        super().__init__()
        self.sim_depth = 0
        self.sim_file = ""
        self.sim_path: list = []  # keys (or list indexes) down to the node being composed

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.sim_depth += 1
        if parent is not None:
            self.sim_path.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        try:
            if self.sim_depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(f"nested deeper than {MAX_DEPTH} levels", file=self.sim_file,
                                  line=mark.line + 1, key=short_path([p for p in self.sim_path if p is not None]),
                                  allowed=f"at most {MAX_DEPTH} levels of mappings and lists")
            return super().compose_node(parent, index)
        finally:
            self.sim_depth -= 1
            if parent is not None:
                self.sim_path.pop()


class _Loader(Reader, Scanner, Parser, _DepthComposer, SafeConstructor, _CoreResolver):
    """SafeLoader with the depth-limited composer and YAML 1.2 booleans and floats."""

    def __init__(self, stream: str, file: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        _DepthComposer.__init__(self)
        SafeConstructor.__init__(self)
        _CoreResolver.__init__(self)
        self.sim_file = file


class _Builder:
    """Turns composed nodes into plain Python values, recording lines and counting values."""

    def __init__(self, loader: _Loader, file: str) -> None:
        self.loader = loader
        self.file = file
        self.nodes = 0
        self.alias_values = 0
        self.seen: set[int] = set()  # collection nodes built once: building one again expands an alias
        self.in_alias = 0

    def build(self, node: yaml.Node, path: tuple, lines: Lines, depth: int = 0) -> Any:
        self.nodes += 1
        line = node.start_mark.line + 1
        repeat = isinstance(node, yaml.CollectionNode) and id(node) in self.seen
        if repeat or self.in_alias:
            self.alias_values += 1
            if self.alias_values > MAX_ALIAS_VALUES:
                raise ConfigError(f"aliases expand to more than {MAX_ALIAS_VALUES:,} values (an alias bomb?)",
                                  file=self.file, line=line, key=short_path(path),
                                  allowed="a document without exponential aliases")
        if isinstance(node, yaml.CollectionNode):
            self.seen.add(id(node))
            self.in_alias += repeat
            try:
                return self._build(node, path, lines, depth, line)
            finally:
                self.in_alias -= repeat
        return self._build(node, path, lines, depth, line)

    def _build(self, node: yaml.Node, path: tuple, lines: Lines, depth: int, line: int) -> Any:
        if self.nodes > MAX_NODES:
            raise ConfigError(f"has more than {MAX_NODES:,} values", file=self.file,
                              line=line, key=short_path(path), allowed=f"at most {MAX_NODES:,} values")
        if depth > MAX_DEPTH:  # aliases can nest a document deeper than it is written
            raise ConfigError(f"nested deeper than {MAX_DEPTH} levels (through aliases)", file=self.file,
                              line=line, key=short_path(path), allowed=f"at most {MAX_DEPTH} levels")
        lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                raise self._tag_error(node, path)
            self.loader.flatten_mapping(node)  # YAML merge keys (<<: *base)
            out: dict = {}
            for knode, vnode in node.value:
                if not isinstance(knode, yaml.ScalarNode):
                    raise ConfigError("a key must be a plain value, not a mapping or a list", file=self.file,
                                      line=knode.start_mark.line + 1, key=dotted(path + (node_text(knode),)),
                                      allowed="names such as idle_timeout")
                key = self._scalar(knode, path)
                if isinstance(key, bool):  # a bare `true:` key stays the text it was written as
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
        start = text.rfind("\n", 0, m.start()) + 1
        col = m.start() - start + 1
        key = re.match(r"^\s*-?\s*([A-Za-z0-9_.-]+)\s*:", text[start:m.start()])
        raise ConfigError(f"control character U+{ord(m.group()):04X} at column {col}", file=file, line=line,
                          key=key.group(1) if key else "", allowed="printable text, tabs and newlines")


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

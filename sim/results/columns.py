"""How values are stored in the results tables, so that every column has one Arrow type in every
part file and the parts always merge (docs/outputs.md, "How values are stored").

* A swept key whose canonical values are all booleans, all strings, all integers that int64 holds, or
  all numbers keeps that type (numbers as float64 when ints and floats mix).
* Any other swept key (mappings, lists, ``null``, a mix such as ``off`` and a keepalive mapping, or
  integers beyond int64 such as a swept seed of 2**100) is stored as canonical JSON text
  (``sim.output.json_text``) for every value: ``false``, ``{"count":4,"idle":300,"interval":20}``, and
  for an integer its decimal digits.
* A mapping- or list-valued summary field (``devices``, ``failure_reasons``) is JSON text too.
* ``seed`` is the replication's own seed, uint64; a swept ``seed`` is stored as ``config_seed``.

The JSON columns are listed in ``sweep.json`` (``json_columns``) and in each Parquet file's schema
metadata; ``sim.results.load`` decodes them.
"""

from __future__ import annotations

from typing import Any

from sim.output import json_text

#: the swept keys whose column in points.parquet has another name (``seed`` is the replication's seed)
RENAMED = {"seed": "config_seed"}
#: Parquet schema metadata key holding ``{"json_columns": [...]}``
META_KEY = b"keepalive_sim"
INT64 = (-(2**63), 2**63 - 1)


def param_column(key: str) -> str:
    """The points.parquet column of swept key ``key``."""
    return RENAMED.get(key, key)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int" if INT64[0] <= v <= INT64[1] else "json"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "json"


def column_kind(values: list[Any]) -> str:
    """``bool``, ``int``, ``float``, ``str`` or ``json`` for one axis' canonical values."""
    kinds = {_kind(v) for v in values}
    if kinds <= {"int", "float"} and len(kinds) == 2:
        return "float"
    return kinds.pop() if len(kinds) == 1 else "json"


def stored_params(values: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], frozenset[str]]:
    """Every point's canonical values (``{key: value}``, mappings as dicts) as stored, and the keys
    stored as JSON text."""
    keys = list(values[0]) if values else []
    kinds = {k: column_kind([v[k] for v in values]) for k in keys}
    json_keys = frozenset(k for k, kind in kinds.items() if kind == "json")

    def store(k: str, v: Any) -> Any:
        if kinds[k] == "json":
            return json_text(v)
        return float(v) if kinds[k] == "float" else v

    return [{k: store(k, v[k]) for k in keys} for v in values], json_keys


def nested_to_json(row: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """``row`` with every mapping or list value as JSON text, and the names of those fields."""
    nested = {k for k, v in row.items() if isinstance(v, (dict, list, tuple))}
    return {k: json_text(v) if k in nested else v for k, v in row.items()}, nested

"""Which build of the simulation core runs: compiled by mypyc at install time, or plain Python.

``setup.py`` compiles the modules in ``MODULES`` (the model and the facts it uses) into C extensions
(same sources, about three times as fast) and records a digest of their sources in ``_core.sha256``.
Python would import a compiled module in preference to its ``.py`` file, so an edit to a source
after an editable install would be silently shadowed; ``select`` prevents that. It runs when
``sim`` is imported, before any of those modules, and keeps the plain-Python modules when:

* ``SIM_PURE`` is set in the environment (any non-empty value), or
* the sources no longer match the digest the compiled core was built from (a warning says so).

The choice is all or nothing: compiled modules call each other directly and cannot be mixed
with plain ones. This module itself is never compiled.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path

#: the compiled modules, relative to the ``sim`` package, in import-independent order
MODULES = ("facts/kernel", "facts/names", "facts/wheel", "model/eventheap", "model/clock", "model/ports",
           "model/timeouts", "model/segment", "model/host", "model/acks", "model/keepalive", "model/handshake",
           "model/close", "model/retransmit", "model/kernel", "model/tracing", "model/network",
           "model/messages", "model/ledger", "model/middlebox", "model/faults", "model/app", "model/process_slot",
           "model/pings", "model/pool", "model/proxy", "model/terminating", "model/storm", "model/records",
           "model/scenario")
#: the mypyc group: its shared library is ``sim/_core__mypyc.*.so``
GROUP = "sim._core"
_HERE = Path(__file__).resolve().parent
MANIFEST = _HERE / "_core.sha256"

#: True when the compiled core is in use (set by ``select``)
COMPILED = False
#: why the plain-Python core runs, when it does
REASON = "not selected yet"


def source_paths() -> list[str]:
    """The compiled modules' sources, relative to the project root (for ``mypycify``)."""
    return [f"sim/{name}.py" for name in MODULES]


def sources_digest() -> str:
    """SHA-256 over the compiled modules' sources, in ``MODULES`` order."""
    h = hashlib.sha256()
    for name in MODULES:
        h.update(name.encode())
        h.update((_HERE / f"{name}.py").read_bytes())
    return h.hexdigest()


def write_manifest() -> None:
    """Record the digest of the sources being compiled (called by ``setup.py``)."""
    MANIFEST.write_text(sources_digest() + "\n")


def _compiled_present() -> bool:
    return any(
        (_HERE / f"{name}{suffix}").exists()
        for name in MODULES
        for suffix in importlib.machinery.EXTENSION_SUFFIXES
    )


class _PlainFinder:
    """Import ``sim.model.<MODULES>`` from their ``.py`` files even where a compiled one sits."""

    _names = {"sim." + name.replace("/", ".") for name in MODULES}

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None):
        if fullname not in cls._names:
            return None
        return importlib.util.spec_from_file_location(fullname, _HERE / (fullname[4:].replace(".", "/") + ".py"))


def choose(compiled_present: bool, pure_env: str, manifest: str | None, digest: str) -> tuple[bool, str]:
    """(use the compiled core, why not): the rule ``select`` applies, as a pure function."""
    if not compiled_present:
        return False, "no compiled core is installed (SIM_PURE was set at install, or no compiler)"
    if pure_env:
        return False, "SIM_PURE is set"
    if manifest is None or manifest.strip() != digest:
        return False, "the sources changed since the core was compiled"
    return True, ""


def select() -> None:
    """Decide which core ``sim.model``'s submodules load from (see the module docstring)."""
    global COMPILED, REASON
    present = _compiled_present()
    manifest = MANIFEST.read_text() if present and MANIFEST.exists() else None
    COMPILED, REASON = choose(present, os.environ.get("SIM_PURE", ""), manifest,
                              sources_digest() if present else "")
    if COMPILED or not present:
        return
    if REASON.startswith("the sources"):
        print(f"sim: {REASON}; running the plain-Python core (rebuild with `pip install -e .`)", file=sys.stderr)
    if _PlainFinder not in sys.meta_path:
        sys.meta_path.insert(0, _PlainFinder)


def describe() -> str:
    """One line for reports and benchmarks: which core ran."""
    return "compiled (mypyc)" if COMPILED else f"plain Python ({REASON})"

"""Build hook: compile the simulation core (sim/model) with mypyc.

The same sources run as plain Python; compiled, the model runs about three times as fast (see
docs/performance.md). ``SIM_PURE=1`` at install time skips the compilation; at run time it makes
``sim`` ignore a compiled core. ``sim/native.py`` also ignores a compiled core whose sources
changed after it was built (editable installs), so an edit is never shadowed by a stale build.
Without a C compiler the install still succeeds, with the plain-Python core.
"""

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildCoreOrFallBack(build_ext):
    """Compile the core; if that fails (no compiler, no Python headers), install it uncompiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any build failure leaves a working plain install
            print(f"sim: compiling the core failed ({exc}); installing the plain-Python core", file=sys.stderr)
            self.extensions = []


def ext_modules() -> list:
    if os.environ.get("SIM_PURE"):
        return []
    from mypyc.build import mypycify

    # By path: the build environment has neither the project on sys.path nor its dependencies.
    spec = importlib.util.spec_from_file_location("_sim_native", Path(__file__).parent / "sim/native.py")
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    native.write_manifest()
    return mypycify(native.source_paths(), opt_level="3", group_name=native.GROUP)


setup(ext_modules=ext_modules(), cmdclass={"build_ext": BuildCoreOrFallBack})

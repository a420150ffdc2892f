"""The simulator against the real Linux stack (network namespaces + nftables conntrack).

Needs root, iproute2 and nftables; .ci/run installs them. Outside CI a machine without them skips
these tests; in CI (CI=true) that is a failure, as `validate` exits 77 there too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from sim.testbed import netns
from sim.testbed.validate import case_paths, table, validate


def _available() -> str | None:
    try:
        netns.check_available()
    except netns.Unavailable as exc:
        return str(exc)
    return None


REASON = _available()
IN_CI = os.environ.get("CI", "").lower() == "true"
needs_kernel = pytest.mark.skipif(REASON is not None and not IN_CI, reason=f"kernel testbed unavailable: {REASON}")


def _our_namespaces(pid: int) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(f"{netns.PREFIX}-{pid}-")]


@needs_kernel
def test_every_case_agrees_with_the_kernel():
    assert REASON is None, REASON
    results = validate()
    print(table(results, 0))
    assert len(results) >= 8
    bad = [r for r in results if not r.ok]
    assert not bad, table(bad, 0)
    assert _our_namespaces(os.getpid()) == []


@needs_kernel
def test_ctrl_c_leaves_no_namespaces_or_processes():
    assert REASON is None, REASON
    proc = subprocess.Popen([sys.executable, "-m", "sim", "validate", "--kernel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not _our_namespaces(proc.pid):
        time.sleep(0.05)
    assert _our_namespaces(proc.pid), "the testbed never came up"
    time.sleep(1.0)  # cases are running
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert _our_namespaces(proc.pid) == []
    peers = subprocess.run(["pgrep", "-f", "sim.testbed.peer"], capture_output=True, text=True).stdout.split()
    assert peers == []


def test_each_case_is_a_config():
    from sim.config.load import load_config

    paths = case_paths()
    assert len(paths) >= 8
    for p in paths:
        sc = load_config(p).scenario
        assert sc.connections == 1 and sc.lb is not None

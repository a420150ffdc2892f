"""The simulator against the real Linux stack (network namespaces + nftables conntrack).

Needs root, iproute2 and nftables; .ci/run installs them. Outside CI a machine without them skips
these tests; in CI (CI=true) that is a failure, as `validate` exits 77 there too.

Other runs (other checkouts, other test sessions) may use the testbed on the same machine at the
same time, so every check here looks only at the namespaces and processes of the run it started.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sim.testbed import netns
from sim.testbed.lifecycle import replay_of, run_sim_replay
from sim.testbed.validate import CaseResult, case_paths, main_validate, run_sim_case

ROOT = Path(__file__).resolve().parents[1]


def _available() -> str | None:
    try:
        netns.check_available()
    except netns.Unavailable as exc:
        return str(exc)
    return None


REASON = _available()
IN_CI = os.environ.get("CI", "").lower() == "true"
needs_kernel = pytest.mark.skipif(REASON is not None and not IN_CI, reason=f"kernel testbed unavailable: {REASON}")


def _namespaces_of(pid: int) -> list[str]:
    """Testbed namespaces whose names say they belong to process ``pid`` (either naming scheme)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith((f"{netns.PREFIX}-{pid}-", f"{netns.PREFIX}-{pid}."))]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _peers_in(namespaces: list[str]) -> set[int]:
    """Peer processes running inside these namespaces."""
    pids: set[int] = set()
    for ns in namespaces:
        out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
        pids.update(int(p) for p in out.split() if "sim.testbed.peer" in _cmdline(int(p)))
    return pids


def _still_running(peers: set[int]) -> set[int]:
    return {p for p in peers if "sim.testbed.peer" in _cmdline(p)}


def _capabilities() -> int:
    status = Path("/proc/self/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("CapEff:")).split()[1], 16)


def _start_validate(stderr=subprocess.PIPE) -> subprocess.Popen:
    """``validate --kernel`` in its own process group, as a shell starts a foreground job."""
    return subprocess.Popen([sys.executable, "-m", "sim", "validate", "--kernel"], cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)


def _wait_until_running(proc: subprocess.Popen, peers_wanted: int = 9) -> set[int]:
    """Block until ``proc`` has started at least ``peers_wanted`` peers (a loaded machine may take long
    to start 18 interpreters); returns their PIDs."""
    deadline = time.monotonic() + 90
    peers: set[int] = set()
    while time.monotonic() < deadline and proc.poll() is None:
        peers |= _peers_in(_namespaces_of(proc.pid))
        if len(peers) >= peers_wanted:
            return peers
        time.sleep(0.1)
    pytest.fail(f"the testbed never came up (exit code {proc.poll()})")


def _wait_gone(peers: set[int], pid: int, bound_s: float) -> tuple[set[int], list[str]]:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline and (_still_running(peers) or _namespaces_of(pid)):
        time.sleep(0.1)
    return _still_running(peers), _namespaces_of(pid)


@needs_kernel
def test_every_case_agrees_with_the_kernel():
    """The whole run, through the CLI, with a sweep (what a concurrent run does first) in the middle
    of it: a live run is not stale, so every case still agrees."""
    assert REASON is None, REASON
    proc = subprocess.Popen([sys.executable, "-m", "sim", "validate", "--kernel", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_until_running(proc)
    netns.sweep_stale()
    out, err = proc.communicate(timeout=300)

    def no_nan(word):
        raise AssertionError(f"bare {word} in the JSON output")

    report = json.loads(out, parse_constant=no_nan)
    cases = report["cases"]
    assert len(cases) >= 8
    bad = [c for c in cases if not c["ok"]]
    assert not bad, json.dumps(bad, indent=2)
    assert proc.returncode == 0, err
    assert any(c["kernel_t_s"] is None for c in cases)  # the "ok" cases: no error time, null not NaN
    assert _namespaces_of(proc.pid) == []


@needs_kernel
def test_ctrl_c_exits_130_with_one_line_and_leaves_nothing():
    """Ctrl-C goes to the whole foreground process group: validate and (unless they are kept out of
    it) its peers. One line from validate, not a traceback per peer."""
    assert REASON is None, REASON
    proc = _start_validate()
    peers = _wait_until_running(proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert re.fullmatch(r"interrupted; cleaned up \d+ namespaces\n", err), err
    assert int(err.split()[3]) >= 3
    assert _wait_gone(peers, proc.pid, 10) == (set(), [])


@needs_kernel
def test_sigterm_exits_143_with_one_line_and_leaves_nothing():
    """SIGTERM (kill, a CI timeout, systemd) reaches validate alone: it must remove its peers and
    namespaces itself."""
    assert REASON is None, REASON
    proc = _start_validate()
    peers = _wait_until_running(proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert re.fullmatch(r"terminated; cleaned up \d+ namespaces\n", err), err
    assert _wait_gone(peers, proc.pid, 10) == (set(), [])


def _lasting_peers() -> int:
    """Peers that live until their case ends: a server and a client per case, except the client of a
    handshake case, which exits when connect() fails, a few seconds in (it may be gone before a poll
    sees it)."""
    from sim.config.load import load_config

    replays = [replay_of(load_config(p).scenario) for p in case_paths()]
    return sum(1 if r is not None and r.kind == "connect" else 2 for r in replays)


@needs_kernel
def test_sigkill_peers_die_and_the_next_run_removes_the_rest():
    """SIGKILL cannot be handled: the peers die with their parent, and the next run removes the
    namespaces (with their veths and nft tables) of the dead run."""
    assert REASON is None, REASON
    dead = _start_validate(stderr=subprocess.DEVNULL)
    peers = _wait_until_running(dead, peers_wanted=_lasting_peers())  # every lasting client connected
    time.sleep(0.5)
    assert _namespaces_of(dead.pid)
    dead.kill()
    dead.wait(timeout=30)
    peers |= _peers_in(_namespaces_of(dead.pid))  # the namespaces outlive the run until a sweep
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _still_running(peers):
        time.sleep(0.1)
    assert _still_running(peers) == set(), "peers outlived their parent"
    nxt = _start_validate()
    try:
        next_peers = _wait_until_running(nxt, peers_wanted=1)
        assert _namespaces_of(dead.pid) == [], "the next run left the dead run's namespaces"
    finally:
        os.killpg(nxt.pid, signal.SIGINT)
        _, err = nxt.communicate(timeout=60)
    assert nxt.returncode == 130, err
    assert _wait_gone(next_peers, nxt.pid, 10) == (set(), [])


@needs_kernel
def test_sweep_removes_what_dead_runs_left_and_spares_live_runs():
    """Liveness is by run id (PID and start time), so a PID reused by another process does not keep
    a dead run's leftovers, and a live run's are never touched."""
    assert REASON is None, REASON
    sleeper = subprocess.Popen(["sleep", "60"])
    finished = subprocess.Popen(["true"])
    finished.wait()
    live = netns.run_id(sleeper.pid)
    reused = f"{sleeper.pid}.1"  # same PID, another start time: a dead run whose PID was reused
    gone = f"{finished.pid}.{live.split('.')[1]}"
    names = {rid: f"{netns.PREFIX}-{rid}-99-c" for rid in (live, reused, gone)}
    fake_peer = None
    try:
        for name in names.values():
            netns.run("ip", "netns", "add", name)
        # a peer of a dead run whose namespace is already gone (an orphan): it has to be found by name
        fake_peer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "sim.testbed.peer",
                                      "--run", gone])
        time.sleep(0.2)
        netns.sweep_stale()
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        left = {line.split()[0] for line in out.splitlines() if line.strip()}
        assert names[live] in left
        assert names[reused] not in left and names[gone] not in left
        assert fake_peer.wait(timeout=10) == -signal.SIGKILL
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        if fake_peer is not None:
            fake_peer.kill()
        for name in names.values():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


@needs_kernel
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_peer_exits_quietly_on_sigint_and_sigterm(sig):
    assert REASON is None, REASON
    name = f"{netns.PREFIX}-{netns.run_id()}-98-s"
    netns.run("ip", "netns", "add", name)
    try:
        peer = subprocess.Popen(["ip", "netns", "exec", name, sys.executable, "-m", "sim.testbed.peer", "--run",
                                 netns.run_id(), "server", "8080", "off", "0"], cwd=ROOT, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert json.loads(peer.stdout.readline())["event"] == "listening"
        # real-time priority (or at least nice -10), so load elsewhere does not delay its timed waits;
        # a container may withhold CAP_SYS_NICE (bit 23) from root, and then the peer runs as it is
        if _capabilities() & (1 << 23):
            assert (os.sched_getscheduler(peer.pid) == os.SCHED_FIFO
                    or os.getpriority(os.PRIO_PROCESS, peer.pid) < 0)
        peer.send_signal(sig)
        out, err = peer.communicate(timeout=30)
        assert (out, err) == ("", "")
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_a_peer_whose_parent_is_already_gone_exits_at_once():
    """The race PR_SET_PDEATHSIG leaves open: the parent died before the peer asked to be signalled."""
    peer = subprocess.run([sys.executable, "-m", "sim.testbed.peer", "--run", "1.1", "server", "0", "off", "0"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert (peer.returncode, peer.stdout, peer.stderr) == (0, "", "")


def test_run_ids_name_one_process_lifetime():
    me = netns.run_id()
    pid, start = me.split(".")
    assert int(pid) == os.getpid() and netns.run_alive(me)
    assert not netns.run_alive(f"{pid}.{int(start) + 1}")
    assert netns.owner_of(f"{netns.PREFIX}-{me}-03-l") == me
    assert netns.owner_of(f"{netns.PREFIX}-4242-03-l") == "4242"  # the naming of earlier versions
    assert netns.owner_of("ksimple-1-2") is None and netns.owner_of("other-1.2-x") is None


def _nan_case() -> CaseResult:
    return CaseResult("rst-keepalive-below", "configs/kernel/rst-keepalive-below.yaml", "ok", "ok", math.nan,
                      math.nan, 3, 3, 0.082)


def test_validate_json_has_no_bare_nan(monkeypatch, capsys):
    monkeypatch.setattr("sim.testbed.validate.validate", lambda hz: [_nan_case()])
    assert main_validate(250, True) == 0
    out = capsys.readouterr().out

    def refuse(word):
        raise ValueError(f"bare {word}: not JSON")

    case = json.loads(out, parse_constant=refuse)["cases"][0]
    assert case["kernel_t_s"] is None and case["sim_t_s"] is None and case["ok"] is True


@pytest.mark.parametrize("ci", ["true", ""])
def test_no_root_exits_77_with_one_line(monkeypatch, capsys, ci):
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main_validate(None, False) == 77
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "root" in err, err
    assert ("failure" in err) == (ci == "true")


@pytest.mark.parametrize("ci", ["true", ""])
def test_no_nft_exits_77_with_one_line(tmp_path, ci):
    """A PATH with `ip` but no `nft` (as root; without root the reason is root, still one line)."""
    ip = shutil.which("ip")
    if ip:
        (tmp_path / "ip").symlink_to(ip)
    env = {**os.environ, "PATH": str(tmp_path), "CI": ci}
    proc = subprocess.run([sys.executable, "-m", "sim", "validate", "--kernel"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 77, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert ("nft" in proc.stderr) or os.geteuid() != 0
    assert ("failure" in proc.stderr) == (ci == "true")


@pytest.mark.parametrize("ci", ["true", ""])
def test_an_unavailable_testbed_fails_the_tests_in_ci_and_skips_them_elsewhere(tmp_path, ci):
    env = {**os.environ, "PATH": str(tmp_path), "CI": ci}  # neither ip nor nft
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfs", __file__,
                           "-k", "every_case_agrees"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    if ci:
        assert proc.returncode == 1 and "FAILED" in proc.stdout, proc.stdout
    else:
        assert proc.returncode == 0 and "SKIPPED" in proc.stdout, proc.stdout


def test_each_case_is_a_config():
    from sim.config.load import load_config

    paths = case_paths()
    assert len(paths) >= 8
    for p in paths:
        sc = load_config(p).scenario
        assert sc.connections == 1 and sc.lb is not None


@pytest.mark.parametrize("path", case_paths(), ids=[p.stem for p in case_paths()])
def test_each_case_ends_far_from_any_event(path):
    """The kernel run ends when the client process exits, a scheduling delay after the nominal end;
    a probe due within that delay would count on the kernel and not in the simulator (a flaky
    DISAGREE on a loaded machine). So nothing may change within 0.5 s either side of the end."""
    from sim.config.load import load_config

    def simulated(sc):
        replay = replay_of(sc)
        if replay is None:
            return run_sim_case(sc)
        m = run_sim_replay(sc, replay)  # a handshake or close case: its segments count as the probes do
        return m.outcome, m.t_s, (m.syns, m.fins)

    for hz in (100, 250, 300, 1000):
        sc = load_config(path, [f"kernel.hz={hz}"]).scenario
        results = {d: simulated(sc.model_copy(update={"duration": sc.duration + d})) for d in (-0.5, 0.0, 0.5)}
        first = results[0.0]
        for d, res in results.items():
            assert (res[0], res[2]) == (first[0], first[2]), f"HZ={hz}, duration {d:+} s: {res} vs {first}"
            assert res[1] == first[1] or (math.isnan(res[1]) and math.isnan(first[1]))

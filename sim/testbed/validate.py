"""``python -m sim validate --kernel``: each scaled case on the real kernel and in the simulator.

Teardown: a run removes its namespaces and peers when it ends, fails, or gets SIGINT or SIGTERM
(then one line, ``interrupted|terminated; cleaned up N namespaces``, exit 128 + signal). SIGKILL
cannot be handled: the peers die with the run (PR_SET_PDEATHSIG, see peer.py) and the next run
removes the namespaces (netns.sweep_stale).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from sim.config.load import load_config
from sim.config.profiles import middlebox_spec
from sim.config.schema import Scenario, lb_list
from sim.execution import run_one
from sim.facts.kernel import retries_timeout_s
from sim.facts.wheel import wheel_granularity_j
from sim.output import dumps
from sim.testbed.lifecycle import (
    POLL_S,
    PORT,
    Measured,
    Replay,
    last_timer_s,
    replay_of,
    run_kernel_replay,
    run_peers,
    run_sim_replay,
)
from sim.testbed.netns import SERVER_IP, Testbed, Unavailable, check_available, sweep_stale

CASES_DIR = Path(__file__).resolve().parents[2] / "configs" / "kernel"


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived during main_validate; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _Aborted(Exception):
    """The run is being torn down: start nothing more."""


class _Run:
    """The testbeds and peers of one validate() call, so that a teardown from the main thread finds
    them all. Workers register a testbed before creating it and start peers through ``spawn``; once
    ``abort`` has begun, both refuse, so nothing appears behind the teardown."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.beds: set[Testbed] = set()
        self.procs: set[subprocess.Popen] = set()
        self.aborted = False
        self.removed = 0  # namespaces removed since the abort began
        self.pool: ThreadPoolExecutor | None = None

    def add(self, bed: Testbed) -> None:
        with self.lock:
            if self.aborted:
                raise _Aborted
            self.beds.add(bed)

    def remove(self, bed: Testbed) -> None:
        n = bed.down()
        with self.lock:
            self.beds.discard(bed)
            if self.aborted:
                self.removed += n

    def spawn(self, cmd: list[str], **kwargs) -> subprocess.Popen:
        """Start a peer in its own session: a Ctrl-C goes to the terminal's foreground process group,
        and reaches validate alone, which then removes the peers."""
        with self.lock:
            if self.aborted:
                raise _Aborted
            proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
            self.procs.add(proc)
        return proc

    def abort(self) -> int:
        """Kill every peer, remove every testbed, wait for the workers; returns the namespaces removed."""
        with self.lock:
            self.aborted = True
            procs, beds = list(self.procs), list(self.beds)
        for proc in procs:
            proc.kill()
        for bed in beds:
            self.remove(bed)
        if self.pool is not None:
            # a worker caught half-way through bed.up() finishes its last `ip` call, finds the
            # run aborted and removes its own testbed
            self.pool.shutdown(wait=True, cancel_futures=True)
        return self.removed


_CURRENT: _Run | None = None


@dataclass
class CaseResult:
    name: str
    config: str
    kernel_outcome: str
    sim_outcome: str
    kernel_t_s: float  # client error, seconds after connect (NaN: none)
    sim_t_s: float
    kernel_probes: int
    sim_probes: int
    tolerance_s: float
    note: str = ""
    # SYNs and FINs the client sent, for the handshake and close cases (None: not compared)
    kernel_syns: int | None = None
    sim_syns: int | None = None
    kernel_fins: int | None = None
    sim_fins: int | None = None

    @property
    def ok(self) -> bool:
        if self.kernel_outcome != self.sim_outcome:
            return False
        if self.kernel_syns != self.sim_syns or self.kernel_fins != self.sim_fins:
            return False
        if math.isnan(self.kernel_t_s) != math.isnan(self.sim_t_s):
            return False
        if not math.isnan(self.kernel_t_s) and abs(self.kernel_t_s - self.sim_t_s) > self.tolerance_s:
            return False
        return self.kernel_probes == self.sim_probes


def detect_hz() -> int | None:
    """CONFIG_HZ of the running kernel, from its build config."""
    release = platform.release()
    for path in (Path(f"/boot/config-{release}"), Path("/proc/config.gz")):
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        text = gzip.decompress(raw).decode() if path.suffix == ".gz" else raw.decode()
        for line in text.splitlines():
            if line.startswith("CONFIG_HZ="):
                return int(line.split("=", 1)[1])
    return None


def case_paths() -> list[Path]:
    return sorted(CASES_DIR.glob("*.yaml"))


def _keepalive_arg(ka) -> str:
    if not ka.enabled:
        return "off"
    return f"{ka.idle or 0},{ka.interval or 0},{ka.count or 0}"


def _tolerance_s(sc: Scenario, hz: int, outcome: str) -> float:
    """One timer granularity of the longest timer the case's outcome depends on, plus 50 ms: each
    firing is late by (0, g] on the kernel and in the simulator, with unrelated wheel phases."""
    longest = 1.0
    for ka in (sc.client.keepalive, sc.upstream.keepalive):
        if ka.enabled:
            longest = max(longest, ka.idle or 0, ka.interval or 0)
    if outcome == "timeout_retrans":  # the last RTO step is as long as the retransmission deadline
        _, _, sysctl = sc.kernel.merged(sc.client.kernel).resolved()
        longest = max(longest, sc.client.user_timeout or retries_timeout_s(sysctl["net.ipv4.tcp_retries2"]))
    return _wheel_tolerance_s(longest, hz)


def _wheel_tolerance_s(longest_s: float, hz: int) -> float:
    return wheel_granularity_j(int(longest_s * hz)) / hz + 0.05


def _replay_result(path: Path, sc: Scenario, replay: Replay, k: Measured, hz: int) -> CaseResult:
    """A handshake or close case: outcome, time and the SYNs (connect) or FINs (orphan) the client
    sent, kernel against model. The tolerance is that of the chain's last RTO (the longest timer);
    an orphan's death time also has the poll's resolution. Keepalive probes: none on either side."""
    s = run_sim_replay(sc, replay)
    syn = replay.kind == "connect"
    tolerance = _wheel_tolerance_s(last_timer_s(replay, sc, s.syns if syn else s.fins), hz) + (0 if syn else POLL_S)
    return CaseResult(path.stem, str(path), k.outcome, s.outcome, k.t_s, s.t_s, 0, 0, tolerance, k.note,
                      kernel_syns=k.syns if syn else None, sim_syns=s.syns if syn else None,
                      kernel_fins=None if syn else k.fins, sim_fins=None if syn else s.fins)


def run_kernel_case(run: _Run, sc: Scenario, tag: str) -> tuple[str, float, int, str]:
    """(outcome, client error time after connect, probes sent by both ends, note)."""
    lb = middlebox_spec(lb_list(sc.lb)[0])
    late = "rst" if lb.late_from_client == "rst_to_sender" else "drop"
    gap = sc.classes()[0].traffic.request_gap.spec()[1]  # a kernel case has one class
    bed = Testbed(tag, int(lb.idle_timeout_s), late,
                  client_sysctl=dict(sc.client.kernel.sysctl), server_sysctl=dict(sc.upstream.kernel.sysctl))
    server_args = [_keepalive_arg(sc.upstream.keepalive), str(int(sc.upstream.user_timeout * 1000))]
    client_args = ["client", SERVER_IP, str(PORT), _keepalive_arg(sc.client.keepalive),
                   str(int(sc.client.user_timeout * 1000)), str(gap), str(sc.duration)]
    out, client_err, probes = run_peers(run, bed, server_args, client_args, sc.duration + 60,
                                        lambda: bed.keepalive_probes(bed.client) + bed.keepalive_probes(bed.server))
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    if not events or events[0]["event"] != "connected":
        return "error", math.nan, probes, f"client did not connect: {client_err.strip()[-200:]}"
    t0 = events[0]["t"]
    last = events[-1]
    if last["event"] != "error":
        return "ok", math.nan, probes, ""
    err, phase = last["errno"], last["phase"]
    t = last["t"] - t0
    if err == "ECONNRESET":
        outcome = "reset_on_probe" if phase == "idle" else "reset_on_send"
    elif err == "ETIMEDOUT":
        outcome = "timeout_keepalive" if phase == "idle" else "timeout_retrans"
    else:
        outcome = f"error:{err}"
    return outcome, t, probes, ""


def run_sim_case(sc: Scenario) -> tuple[str, float, int]:
    rec = run_one(sc, 1)
    c = rec.columns
    i = c["conn_id"].index(0)
    t = c["client_closed_at_s"][i] - c["opened_at_s"][i]
    out = c["client_outcome"][i]
    if out in ("ok", "zombie"):
        out, t = "ok", math.nan
    return out, t, c["keepalive_probes"][i]


def validate(hz: int | None = None, cases: list[Path] | None = None) -> list[CaseResult]:
    """Run every case (in parallel on the kernel side). Raises netns.Unavailable. Whatever happens,
    the testbeds are gone when it returns or raises."""
    global _CURRENT
    _CURRENT = None
    check_available()
    sweep_stale()
    hz = hz or detect_hz()
    if hz is None:
        raise RuntimeError("cannot read CONFIG_HZ of the running kernel; pass --hz")
    paths = cases or case_paths()
    scenarios = [load_config(p, [f"kernel.hz={hz}", "kernel.timers=wheel"]).scenario for p in paths]
    replays = [replay_of(sc) for sc in scenarios]
    run = _CURRENT = _Run()
    run.pool = ThreadPoolExecutor(max_workers=len(paths))
    try:
        futures = [run.pool.submit(run_kernel_case, run, sc, f"{i:02d}") if rp is None
                   else run.pool.submit(run_kernel_replay, run, rp, f"{i:02d}")
                   for i, (sc, rp) in enumerate(zip(scenarios, replays, strict=True))]
        kernel = [f.result() for f in futures]
    except BaseException:
        run.abort()
        raise
    finally:
        run.pool.shutdown(wait=True)
    results = []
    for path, sc, rp, k in zip(paths, scenarios, replays, kernel, strict=True):
        if isinstance(k, Measured):  # what run_kernel_replay returns
            assert rp is not None
            results.append(_replay_result(path, sc, rp, k, hz))
            continue
        k_out, k_t, k_probes, note = k
        s_out, s_t, s_probes = run_sim_case(sc)
        results.append(CaseResult(path.stem, str(path), k_out, s_out, k_t, s_t, k_probes, s_probes,
                                  _tolerance_s(sc, hz, s_out), note))
    return results


def measure_replays(replays: list[Replay]) -> list[Measured]:
    """The kernel side alone of handshake and close replays, in parallel (lifecycle.py). Raises
    netns.Unavailable; the testbeds are gone when it returns or raises."""
    check_available()
    sweep_stale()
    run = _Run()
    run.pool = ThreadPoolExecutor(max_workers=len(replays))
    try:
        futures = [run.pool.submit(run_kernel_replay, run, r, f"{i:02d}") for i, r in enumerate(replays)]
        return [f.result() for f in futures]
    except BaseException:
        run.abort()
        raise
    finally:
        run.pool.shutdown(wait=True)


def cleanup() -> int:
    """Remove every testbed and peer of the current run (also after Ctrl-C); returns the number of
    namespaces removed since its teardown began."""
    return _CURRENT.abort() if _CURRENT is not None else 0


def _segments(r: CaseResult) -> str:
    """The compared SYN or FIN counts, kernel/simulated (``6/6 SYN``), ``-`` when none are."""
    for k, s, word in ((r.kernel_fins, r.sim_fins, "FIN"), (r.kernel_syns, r.sim_syns, "SYN")):
        if (k, s) != (None, None) and (k, s) != (0, 0):
            return f"{'-' if k is None else k}/{'-' if s is None else s} {word}"
    return "-"


def table(results: list[CaseResult], hz: int) -> str:
    head = (f"{'case':38s} {'kernel':18s} {'simulated':18s} {'t kernel':>9s} {'t sim':>9s} {'diff':>7s} "
            f"{'tol':>6s} {'probes k/s':>10s} {'SYN/FIN k/s':>11s}  verdict")
    lines = [f"real kernel {platform.release()} (HZ={hz}) vs simulator (wheel timers, HZ={hz})", head]
    for r in results:
        diff = r.kernel_t_s - r.sim_t_s
        t = [("–" if math.isnan(x) else f"{x:.3f}") for x in (r.kernel_t_s, r.sim_t_s, diff)]
        lines.append(f"{r.name:38s} {r.kernel_outcome:18s} {r.sim_outcome:18s} {t[0]:>9s} {t[1]:>9s} {t[2]:>7s} "
                     f"{r.tolerance_s:6.3f} {f'{r.kernel_probes}/{r.sim_probes}':>10s} {_segments(r):>11s}  "
                     f"{'agree' if r.ok else 'DISAGREE'}{(' ' + r.note) if r.note else ''}")
    n_ok = sum(r.ok for r in results)
    lines.append(f"{n_ok} passed, {len(results) - n_ok} failed")
    return "\n".join(lines)


def _on_signal(signum: int, frame) -> None:
    # a second Ctrl-C (or a SIGTERM after it) must not cut the teardown short
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Interrupted(signum)


def unavailable_line(reason: str) -> str:
    """The one line for exit 77. DESIGN §4: in CI (CI=true) not running is a failure, not a skip."""
    if os.environ.get("CI", "").lower() == "true":
        return f"validate: cannot run here: {reason}; with CI=true that is a failure"
    return f"validate: skipped: {reason}"


def main_validate(hz: int | None, as_json: bool) -> int:
    t0 = time.monotonic()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        results = validate(hz)
    except Unavailable as exc:
        print(unavailable_line(str(exc)), file=sys.stderr)
        return 77
    except Interrupted as exc:
        word = "interrupted" if exc.signum == signal.SIGINT else "terminated"
        print(f"{word}; cleaned up {cleanup()} namespaces", file=sys.stderr)
        return 128 + exc.signum
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    used_hz = hz or detect_hz() or 0
    if as_json:
        print(dumps({"hz": used_hz, "kernel": platform.release(), "wall_s": round(time.monotonic() - t0, 1),
                     "cases": [{**r.__dict__, "ok": r.ok} for r in results]}))
    else:
        print(table(results, used_hz))
    return 0 if all(r.ok for r in results) else 1

"""``python -m sim validate --kernel``: each scaled case on the real kernel and in the simulator."""

from __future__ import annotations

import gzip
import json
import math
import os
import platform
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
from sim.model.clock import wheel_granularity_j
from sim.model.kernel import retries_timeout_s
from sim.model.scenario import run_one
from sim.testbed.netns import SERVER_IP, Testbed, check_available, sweep_stale

CASES_DIR = Path(__file__).resolve().parents[2] / "configs" / "kernel"
PORT = 8080
_ACTIVE: set[Testbed] = set()
_LOCK = threading.Lock()


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

    @property
    def ok(self) -> bool:
        if self.kernel_outcome != self.sim_outcome:
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
    return wheel_granularity_j(int(longest * hz)) / hz + 0.05


def run_kernel_case(sc: Scenario, tag: str) -> tuple[str, float, int, str]:
    """(outcome, client error time after connect, probes sent by both ends, note)."""
    lb = middlebox_spec(lb_list(sc.lb)[0])
    late = "rst" if lb.late_from_client == "rst_to_sender" else "drop"
    gap = sc.traffic.request_gap.spec()[1]
    bed = Testbed(tag, int(lb.idle_timeout_s), late,
                  client_sysctl=dict(sc.client.kernel.sysctl), server_sysctl=dict(sc.upstream.kernel.sysctl))
    with _LOCK:
        _ACTIVE.add(bed)
    try:
        with bed:
            peer = [sys.executable, "-m", "sim.testbed.peer"]
            env = {**os.environ, "PYTHONPATH": str(CASES_DIR.parents[1])}
            server = subprocess.Popen(bed.ns(bed.server, *peer, "server", str(PORT),
                                             _keepalive_arg(sc.upstream.keepalive),
                                             str(int(sc.upstream.user_timeout * 1000))),
                                      stdout=subprocess.PIPE, text=True, env=env)
            server.stdout.readline()  # listening
            client = subprocess.run(bed.ns(bed.client, *peer, "client", SERVER_IP, str(PORT),
                                           _keepalive_arg(sc.client.keepalive),
                                           str(int(sc.client.user_timeout * 1000)), str(gap), str(sc.duration)),
                                    capture_output=True, text=True, env=env, timeout=sc.duration + 60)
            probes = bed.keepalive_probes(bed.client) + bed.keepalive_probes(bed.server)
            server.kill()
            server.wait()
    finally:
        with _LOCK:
            _ACTIVE.discard(bed)
    events = [json.loads(line) for line in client.stdout.splitlines() if line.startswith("{")]
    if not events or events[0]["event"] != "connected":
        return "error", math.nan, probes, f"client did not connect: {client.stderr.strip()[-200:]}"
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
    """Run every case (in parallel on the kernel side). Raises netns.Unavailable."""
    check_available()
    sweep_stale()
    hz = hz or detect_hz()
    if hz is None:
        raise RuntimeError("cannot read CONFIG_HZ of the running kernel; pass --hz")
    paths = cases or case_paths()
    scenarios = [load_config(p, [f"kernel.hz={hz}", "kernel.timers=wheel"]).scenario for p in paths]
    try:
        with ThreadPoolExecutor(max_workers=len(paths)) as pool:
            kernel = list(pool.map(lambda a: run_kernel_case(a[1], f"{a[0]:02d}"), enumerate(scenarios)))
    finally:
        cleanup()
    results = []
    for path, sc, (k_out, k_t, k_probes, note) in zip(paths, scenarios, kernel, strict=True):
        s_out, s_t, s_probes = run_sim_case(sc)
        results.append(CaseResult(path.stem, str(path), k_out, s_out, k_t, s_t, k_probes, s_probes,
                                  _tolerance_s(sc, hz, s_out), note))
    return results


def cleanup() -> None:
    """Remove every testbed of this process (also after Ctrl-C)."""
    with _LOCK:
        beds = list(_ACTIVE)
        _ACTIVE.clear()
    for bed in beds:
        bed.down()


def table(results: list[CaseResult], hz: int) -> str:
    head = (f"{'case':38s} {'kernel':18s} {'simulated':18s} {'t kernel':>9s} {'t sim':>9s} {'diff':>7s} "
            f"{'tol':>6s} {'probes k/s':>10s}  verdict")
    lines = [f"real kernel {platform.release()} (HZ={hz}) vs simulator (wheel timers, HZ={hz})", head]
    for r in results:
        diff = r.kernel_t_s - r.sim_t_s
        t = [("–" if math.isnan(x) else f"{x:.3f}") for x in (r.kernel_t_s, r.sim_t_s, diff)]
        lines.append(f"{r.name:38s} {r.kernel_outcome:18s} {r.sim_outcome:18s} {t[0]:>9s} {t[1]:>9s} {t[2]:>7s} "
                     f"{r.tolerance_s:6.3f} {f'{r.kernel_probes}/{r.sim_probes}':>10s}  "
                     f"{'agree' if r.ok else 'DISAGREE'}{(' ' + r.note) if r.note else ''}")
    n_ok = sum(r.ok for r in results)
    lines.append(f"{n_ok} passed, {len(results) - n_ok} failed")
    return "\n".join(lines)


def main_validate(hz: int | None, as_json: bool) -> int:
    from sim.testbed.netns import Unavailable

    t0 = time.monotonic()
    try:
        results = validate(hz)
    except Unavailable as exc:
        print(f"validate: skipped: {exc}", file=sys.stderr)
        if os.environ.get("CI", "").lower() == "true":
            print("validate: a skip is a failure in CI (CI=true)", file=sys.stderr)
        return 77
    used_hz = hz or detect_hz() or 0
    if as_json:
        print(json.dumps({"hz": used_hz, "kernel": platform.release(), "wall_s": round(time.monotonic() - t0, 1),
                          "cases": [{**r.__dict__, "ok": r.ok} for r in results]},
                         default=lambda x: None if isinstance(x, float) and math.isnan(x) else x, indent=2))
    else:
        print(table(results, used_hz))
    return 0 if all(r.ok for r in results) else 1

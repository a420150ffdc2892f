"""The handshake and close cases of ``validate --kernel`` on the real kernel (kernel-lifecycle.md,
R41–R47): one connection in a client ── lb ── server testbed whose lb drops every SYN the client
sends (a fault), or has forgotten the flow by the time the client closes it (its conntrack idle
timeout, late packets dropped: a blackhole), or drops every FIN the client sends (a fault).

What is measured, and how:
- SYNs and FINs: named nft counters in the lb namespace's prerouting hook, on the packets that
  arrive from the client's veth, before the drop: what the client put on the wire, retransmissions
  and loss probes included.
- ``connect``: the time from just before connect() (the first SYN leaves inside the call) to the
  error it returns, CLOCK_MONOTONIC in the client process, which runs at real-time priority.
- ``orphan``: the time from close() (the first FIN leaves inside the call) to the first poll of the
  client namespace's /proc/net/tcp that no longer finds the socket; the poll runs every ``POLL_S``,
  so the time is late by at most that much.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import Protocol, TypeVar

from sim.config.profiles import middlebox_spec
from sim.config.schema import Scenario, lb_list
from sim.execution import run_one
from sim.facts.kernel import TCP_RTO_MAX_S, TCP_RTO_MIN_S, TCP_TIMEOUT_INIT_S
from sim.testbed.netns import PEER_ENV, SERVER_IP, Testbed

PORT = 8080
T = TypeVar("T")
#: Poll interval of the orphan's /proc/net/tcp, seconds: the resolution of the orphan's death time.
POLL_S = 0.005


class Runner(Protocol):
    """What a replay needs from a validate run (validate._Run): register a testbed, start a peer."""

    def add(self, bed: Testbed) -> None: ...

    def remove(self, bed: Testbed) -> None: ...

    def spawn(self, cmd: list[str], **kwargs) -> subprocess.Popen: ...


@dataclass(frozen=True)
class Replay:
    """One handshake or close case, as the kernel side runs it.

    ``kind`` ``connect``: connect() while the lb drops every SYN (``drop="syn"``), with TCP_SYNCNT
    ``syncnt`` and TCP_USER_TIMEOUT ``user_timeout_ms`` on the socket (0: unset).
    ``kind`` ``orphan``: one request and response, ``idle_s`` of silence, then close(); the FIN is
    lost when the lb has forgotten the flow by then (``lb_timeout_s`` below ``idle_s``, ``late``
    ``drop``), or with ``drop="fin"``.
    ``lb_timeout_s`` and ``late`` are the lb's conntrack idle timeout (whole seconds) and what it does
    with a packet of a forgotten flow (``drop`` or ``rst``). ``client_sysctl`` is set in the client's
    namespace (net.ipv4 sysctls are per namespace); ``max_s`` bounds the wait for the outcome,
    seconds."""

    kind: str
    drop: str = ""
    _: KW_ONLY
    lb_timeout_s: int = 4
    late: str = "drop"
    idle_s: float = 0.0
    client_sysctl: dict[str, int] = field(default_factory=dict)
    syncnt: int = 0
    user_timeout_ms: int = 0
    max_s: float = 30.0


@dataclass
class Measured:
    """What the kernel did. ``outcome``: ``connect_timeout`` (ETIMEDOUT), ``connect_refused``
    (ECONNREFUSED), ``ok`` (connected), ``orphan_died`` (the orphan vanished while still in
    FIN_WAIT1: its retransmission limit), ``orphan_closed`` (it went through FIN_WAIT2 or TIME_WAIT:
    its FIN was acknowledged), ``orphan_alive`` (still there after ``max_s``), else ``error:...``.
    ``t_s``: seconds from the first SYN to connect()'s error, or from close() to the orphan's end
    (NaN: none). ``syns``, ``fins``: segments the client sent, counted on the wire."""

    outcome: str
    t_s: float
    syns: int
    fins: int
    note: str = ""


def run_peers(run: Runner, bed: Testbed, server_args: list[str], client_args: list[str], timeout_s: float,
              measure: Callable[[], T]) -> tuple[str, str, T]:
    """Bring ``bed`` up, start the server peer and wait until it listens, run the client peer to its
    end (at most ``timeout_s``), then ``measure()`` the testbed: (client stdout, client stderr, that
    measure). The peers and the testbed are gone when this returns, whatever happened."""
    run.add(bed)
    server = client = None
    try:
        bed.up()
        server = run.spawn(bed.peer(bed.server, "server", str(PORT), *server_args),
                           stdout=subprocess.PIPE, text=True, env=PEER_ENV)
        assert server.stdout is not None  # a pipe: stdout=PIPE
        server.stdout.readline()  # listening
        client = run.spawn(bed.peer(bed.client, *client_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=PEER_ENV)
        out, err = client.communicate(timeout=timeout_s)
        measured = measure()
    finally:
        # this thread is the peers' parent for PR_SET_PDEATHSIG: it ends only after they have
        for proc in (client, server):
            if proc is not None:
                proc.kill()
                proc.wait()
        run.remove(bed)
    return out, err, measured


def run_kernel_replay(run: Runner, replay: Replay, tag: str) -> Measured:
    """Run ``replay`` in a fresh testbed named by ``tag``; the testbed is gone when this returns."""
    bed = Testbed(tag, replay.lb_timeout_s, replay.late, drop=replay.drop, client_sysctl=dict(replay.client_sysctl))
    if replay.kind == "connect":
        args = ["connect", SERVER_IP, str(PORT), str(replay.syncnt), str(replay.user_timeout_ms)]
    else:
        args = ["orphan", SERVER_IP, str(PORT), str(replay.idle_s), str(POLL_S), str(replay.max_s)]
    out, err, counts = run_peers(run, bed, ["off", "0"], args, replay.max_s + 60, bed.client_segments)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    outcome, t, note = _outcome(events, err)
    return Measured(outcome, t, counts["syn"], counts["fin"], note)


def _outcome(events: list[dict], stderr: str) -> tuple[str, float, str]:
    """(outcome, t_s, note) from the client peer's events."""
    if not events:
        return "error", math.nan, f"the client reported nothing: {stderr.strip()[-200:]}"
    last = events[-1]
    kind = last["event"]
    if kind == "connect_error":
        names = {"ETIMEDOUT": "connect_timeout", "ECONNREFUSED": "connect_refused"}
        return names.get(last["errno"], f"error:{last['errno']}"), last["t"] - last["t0"], ""
    if kind == "connected" and "t0" in last:
        return "ok", last["t"] - last["t0"], ""
    if kind == "gone":
        states = last["states"]
        died = states == ["fin_wait1"]
        return ("orphan_died" if died else "orphan_closed"), last["t"] - last["t_close"], "states " + ",".join(states)
    if kind == "end" and "t_close" in last:
        return "orphan_alive", math.nan, "states " + ",".join(last["states"])
    return f"error:{last.get('errno', kind)}", math.nan, stderr.strip()[-200:]


def replay_of(sc: Scenario) -> Replay | None:
    """The handshake or close replay a case config describes, None for an idle-flow case.

    A fault that drops the SYNs the client sends from the start of the run (``packets: syn``,
    ``direction: to_server``, ``action: drop`` on the client's leg) makes a ``connect`` case, with
    the client's TCP_SYNCNT and TCP_USER_TIMEOUT; a client pool idle timeout longer than the lb's
    makes an ``orphan`` case (the client closes into the forgotten flow). Raises ValueError for a
    fault the testbed cannot replay."""
    lb = middlebox_spec(lb_list(sc.lb)[0])
    base = Replay("", lb_timeout_s=int(lb.idle_timeout_s),
                  late="rst" if lb.late_from_client == "rst_to_sender" else "drop",
                  client_sysctl=dict(sc.client.kernel.sysctl), max_s=sc.duration)
    drops = {_testbed_drop(f) for f in sc.faults or ()}
    if "syn" in drops:
        return replace(base, kind="connect", drop="syn", syncnt=sc.client.syncnt or 0,
                       user_timeout_ms=int(sc.client.user_timeout * 1000))
    if sc.client.pool.idle_timeout:
        return replace(base, kind="orphan", drop="fin" if "fin" in drops else "", idle_s=sc.client.pool.idle_timeout)
    return None


def _testbed_drop(fault) -> str:
    """``syn`` or ``fin``: the nft rule that replays ``fault``; ValueError for anything else."""
    if (fault.at, fault.for_, fault.direction, fault.action) != (0, None, "to_server", "drop") \
            or fault.packets not in ("syn", "fin"):
        raise ValueError(f"the kernel testbed replays only faults that drop every SYN or FIN the client sends "
                         f"from the start (at: 0, no for, direction: to_server, action: drop), not {fault}")
    return fault.packets


def last_timer_s(replay: Replay, sc: Scenario, segments: int) -> float:
    """The longest timer of the chain that ends a case with ``segments`` SYNs or FINs, seconds: the
    last RTO. SYN_SENT: 1 s for the first tcp_syn_linear_timeouts retransmissions, doubling after
    (R41, R42); an orphan's FIN: TCP_RTO_MIN doubling after the loss probe (R46)."""
    if replay.kind == "connect":
        _, _, sysctl = sc.kernel.merged(sc.client.kernel).resolved()
        linear = sysctl["net.ipv4.tcp_syn_linear_timeouts"]
        return min(TCP_TIMEOUT_INIT_S * 2 ** max(0, segments - 1 - linear), TCP_RTO_MAX_S)
    return min(TCP_RTO_MIN_S * 2 ** max(0, segments - 2), TCP_RTO_MAX_S)


def run_sim_replay(sc: Scenario, replay: Replay) -> Measured:
    """The model's side of a handshake or close case, in the kernel side's terms."""
    c = _first_connection(sc)
    if replay.kind == "connect":
        return Measured(c["connect_outcome"], c["connect_s"], c["syns_sent"], 0)
    closed_s = c["client_closed_at_s"]  # the application's close(): its FIN leaves then
    if c["orphan_died"]:
        return Measured("orphan_died", _orphan_death_s(sc, closed_s) - closed_s, c["syns_sent"], c["fins_sent"])
    state = c["client_close_state"]
    outcome = {"fin_wait1": "orphan_alive", "established": "error:not closed"}.get(state, "orphan_closed")
    return Measured(outcome, math.nan, c["syns_sent"], c["fins_sent"], f"state {state}")


#: How closely the model's orphan death time is bisected, seconds.
DEATH_RESOLUTION_S = 1e-4


def _first_connection(sc: Scenario) -> dict:
    """The record columns of connection 0 of a one-replication run, as scalars."""
    cols = run_one(sc, 1).columns
    i = cols["conn_id"].index(0)
    return {k: v[i] for k, v in cols.items()}


def _orphan_death_s(sc: Scenario, closed_s: float) -> float:
    """When the model's orphan died. The records say whether it died by the end of the run, not
    when, so this finds the shortest run after which it has: the first point of a fixed grid of
    DEATH_RESOLUTION_S (bisection; the same answer whatever the case's duration). What happens before
    a run's end does not depend on its length."""
    lo, hi = math.floor(closed_s / DEATH_RESOLUTION_S), math.ceil(sc.duration / DEATH_RESOLUTION_S)
    while hi - lo > 1:  # not dead after lo steps, dead after hi
        mid = (lo + hi) // 2
        if _first_connection(sc.model_copy(update={"duration": mid * DEATH_RESOLUTION_S}))["orphan_died"]:
            hi = mid
        else:
            lo = mid
    return hi * DEATH_RESOLUTION_S

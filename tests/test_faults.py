"""Fault injection (docs/config.md#faults): which segments a fault takes, where it stands, and what
the endpoints then do, with the numbers worked out by hand from the kernel rules
(docs/reference/kernel-keepalive.md R17–R35)."""

from __future__ import annotations

import math

import pytest
import yaml

from sim.config.load import load_config
from sim.config.validate import Source, validate_scenario
from sim.execution import run_one
from sim.execution.grid import expand
from sim.execution.tasks import scenario_digest
from sim.metrics.summary import summarize_one
from sim.model.clock import Clock, Scheduler
from sim.model.faults import Fault
from sim.model.host import Host
from sim.model.kernel import TcpSocket
from sim.model.middlebox import Middlebox
from sim.model.network import Path
from sim.model.scenario import World
from sim.model.segment import ACK, DATA, FIN, KIND_NAMES, PROBE, RST, SYN, SYNACK, Seg
from sim.model.tracing import Trace
from sim.results.folder import resolved_config_yaml
from sim.spec import FaultSpec, MiddleboxSpec

HOP_S = 0.001
#: one connection, exact timers at HZ=1000, 1 ms hops: RTT 2 ms, RTO0 = 0.202 s (R30), PTO = 0.202 s
#: (R29: min(2·SRTT + 200 ms, RTO0))
BASE = {"name": "fault", "connections": 1, "kernel": {"hz": 1000, "timers": "exact"}}


def run(raw: dict, trace_conn: int | None = None):
    sc = validate_scenario({**BASE, **raw}, Source("<test>", {}))
    return run_one(sc, 1, trace_conn=trace_conn), sc


# ----------------------------------------------------------------------------- on the path
class _Owner:
    def on_established(self, sock): pass
    def on_data(self, sock, payload): pass
    def on_peer_fin(self, sock, seg): pass
    def on_error(self, sock, errno, cause, seg): pass


def _path(*specs: FaultSpec, now_s: float = 10.0) -> tuple[Path, TcpSocket, TcpSocket, list[Fault]]:
    """Client ``a`` and server ``b`` on a path with no middlebox, the faults at its ends."""
    sched = Scheduler()
    sched.now_s = now_s
    host = Host("h", sched, Clock(1000, True, 0.0), None)
    path = Path(sched, [], HOP_S)
    a, b = TcpSocket(host, _Owner(), None), TcpSocket(host, _Owner(), None)
    path.attach(a, b)
    faults = [Fault(i, s) for i, s in enumerate(specs)]
    path.faults = tuple(faults)
    path.trace = Trace((0, 0))
    return path, a, b, faults


def _seg(kind: int, probe_ack: bool = False) -> Seg:
    seg = Seg(kind, 0, 0)
    seg.probe_ack = probe_ack
    return seg


#: kinds each packet class takes (RST: only ``all``; ``ack``: pure ACKs, probes and their answers)
CLASSES = {
    "all": {SYN, SYNACK, ACK, DATA, PROBE, FIN, RST},
    "syn": {SYN, SYNACK},
    "fin": {FIN},
    "data": {DATA},
    "ack": {ACK, PROBE},
}


@pytest.mark.parametrize("packets", sorted(CLASSES))
@pytest.mark.parametrize("kind", range(len(KIND_NAMES)), ids=KIND_NAMES)
def test_each_packet_class_takes_its_kinds_and_no_other(packets, kind):
    path, a, b, (fault,) = _path(FaultSpec(0.0, math.inf, "downstream", "both", packets, "drop"))
    sender = b if kind == SYNACK else a
    delivered = path(sender, _seg(kind))
    assert delivered is (kind not in CLASSES[packets])
    assert fault.drops == (0 if delivered else 1)


def test_a_probe_answer_is_an_ack():
    path, a, b, (fault,) = _path(FaultSpec(0.0, math.inf, "downstream", "to_client", "ack", "drop"))
    assert path(b, _seg(ACK, probe_ack=True)) is False
    assert path(b, _seg(DATA)) is True
    assert fault.drops == 1


@pytest.mark.parametrize("direction, to_server, to_client", [("to_server", False, True), ("to_client", True, False),
                                                              ("both", False, False)])
def test_direction(direction, to_server, to_client):
    path, a, b, _ = _path(FaultSpec(0.0, math.inf, "downstream", direction, "syn", "drop"))
    assert path(a, _seg(SYN)) is to_server  # the client's SYN goes to the server
    assert path(b, _seg(SYNACK)) is to_client


@pytest.mark.parametrize("now_s, taken", [(9.998, False), (9.999, True), (19.998, True), (19.999, False)])
def test_the_window_is_checked_at_the_segments_arrival(now_s, taken):
    """[at, at + for) at the fault's position: the far end of the leg, one hop after sending."""
    path, a, _, (fault,) = _path(FaultSpec(10.0, 20.0, "downstream", "both", "fin", "drop"), now_s=now_s)
    assert path(a, _seg(FIN)) is not taken
    assert fault.drops == int(taken)


def test_rst_answers_the_sender_and_is_traced():
    path, a, _, (fault,) = _path(FaultSpec(0.0, math.inf, "downstream", "both", "syn", "rst"))
    assert path(a, _seg(SYN)) is False
    assert (fault.drops, fault.rsts) == (0, 1)
    syn, note = path.trace.events[:2]
    # the SYN as its sender's capture shows it, taken by the fault (sim.model.tracing), then the verdict
    assert (syn[:3], syn[9:]) == ((10.0, "client", "SYN"), ("fault", pytest.approx(10.001), "faults[0]"))
    assert note[:4] == (pytest.approx(10.001), "fault", "RST", "faults[0]: RST for SYN")
    (entry,) = path.sched.near
    t_s, rst = entry.t_s, entry.ev
    assert t_s == pytest.approx(10.002) and rst.kind == RST and rst.origin == "faults[0]" and rst.provoked_by == SYN
    assert rst.dst is a


def test_an_rst_is_dropped_never_answered_and_a_faults_own_rst_passes():
    path, a, b, (fault,) = _path(FaultSpec(0.0, math.inf, "downstream", "both", "all", "rst"))
    assert path(a, _seg(RST)) is False
    assert (fault.drops, fault.rsts) == (1, 0)
    own = _seg(RST)
    own.origin = "faults[0]"
    assert path(b, own) is True


def test_the_first_matching_fault_takes_it():
    path, a, _, faults = _path(FaultSpec(0.0, math.inf, "downstream", "both", "data", "drop"),
                               FaultSpec(0.0, math.inf, "downstream", "both", "all", "rst"))
    assert path(a, _seg(DATA)) is False
    assert path(a, _seg(SYN)) is False
    assert [(f.drops, f.rsts) for f in faults] == [(1, 0), (0, 1)]


def test_a_syn_taken_at_a_device_makes_no_flow_there():
    """A fault at a middlebox stands in front of its flow table: the device never sees the SYN."""
    sched = Scheduler()
    host = Host("h", sched, Clock(1000, True, 0.0), None)
    from sim.model.faults import FaultedMiddlebox

    fault = Fault(0, FaultSpec(0.0, math.inf, "aws-nlb-tcp", "to_server", "syn", "drop"))
    nlb = FaultedMiddlebox(MiddleboxSpec("aws-nlb-tcp", 350.0), sched, (0, 0), "downstream", 60.0, (fault,))
    path = Path(sched, [nlb], HOP_S)
    a, b = TcpSocket(host, _Owner(), None), TcpSocket(host, _Owner(), None)
    path.attach(a, b)
    assert path(a, _seg(SYN)) is False
    assert path.flows == () and nlb.new_flows == 0 and fault.drops == 1


# ----------------------------------------------------------------------------- whole runs
def test_no_faults_no_fault_objects():
    """The hot path's only cost: ``faults is None`` on every path, and plain devices."""
    sc = validate_scenario({**BASE, "lb": "aws-nlb-tcp", "envoy": {}, "upstream": {"lb": "aws-nat-gateway"},
                            "duration": 60}, Source("<test>", {}))
    from sim.config.resolve import world_spec

    world = World(world_spec(sc), 1)
    world.sched.run(60)
    assert world.conns and all(c.path.faults is None for c in world.conns)
    assert all(type(m) is Middlebox for m in world.ds_mbs + world.us_mbs)
    rec = world.finish()
    assert rec.counters["fault_drops"] == rec.counters["fault_rsts"] == 0 and rec.series["faults"] == []


def test_a_data_blackhole_kills_the_request_by_retransmission_timeout():
    """tcp_retries2 = 3, T(3) = 3.0 s (R32). The request at t = 100.004 is lost; TLP at +0.202 (R29), R1 =
    +0.404 (R31); RTO retransmissions at R1 + 0.404, + 1.212, + 2.828 (R30: doubling from 0.202); at R1 + 6.06
    the death test passes (6.06 ≥ 3.0): ETIMEDOUT at 106.468, no RST (R33). Six DATA segments dropped."""
    rec, sc = run({"duration": 600, "traffic": {"request_gap": {"fixed": 100}},
                   "kernel": {"hz": 1000, "timers": "exact", "sysctl": {"net.ipv4.tcp_retries2": 3}},
                   "faults": [{"at": "100s", "for": "60s", "leg": "downstream", "direction": "to_server",
                               "packets": "data"}]})
    c = rec.columns
    assert c["client_outcome"][0] == "timeout_retrans"
    assert c["client_closed_at_s"][0] == pytest.approx(106.468, abs=1e-9)
    assert c["hang_s"][0] == pytest.approx(6.464, abs=1e-9)
    assert (c["failed_requests"][0], c["timeouts"][0]) == (1, 1)
    # the replacement's requests come after the window (206.468 ...): all answered
    assert c["client_outcome"][1] == "ok" and c["failed_requests"][1] == 0 and c["requests"][1] == 4
    assert (rec.counters["fault_drops"], rec.counters["fault_rsts"]) == (6, 0)
    summary = summarize_one(rec, sc.duration)
    assert summary["fault_counts"] == [{"fault": "faults[0]", "drops": 6, "rsts": 0}]


def test_without_the_fault_the_same_run_fails_nothing():
    rec, _ = run({"duration": 600, "traffic": {"request_gap": {"fixed": 100}},
                  "kernel": {"hz": 1000, "timers": "exact", "sysctl": {"net.ipv4.tcp_retries2": 3}}})
    assert rec.columns["failed_requests"] == [0] and rec.columns["requests"] == [6]


def test_an_rst_on_the_keepalive_probe_resets_the_connection():
    """Keepalive 60/10/3: the last segment received at 0.004 (the response), KT fires at 60.002, re-arms
    for the rest (R16) and probes at 60.004 (R18); the probe meets the fault at the server's end at 60.005
    and the RST is back at 60.006: ECONNRESET, reset_on_probe (R26). The window (60 s, 8 ms) ends before
    the replacement's handshake ACK gets there (60.009)."""
    rec, _ = run({"duration": 600, "traffic": {"request_gap": {"fixed": 1000}},
                  "client": {"keepalive": {"idle": "60s", "interval": "10s", "count": 3}},
                  "faults": [{"at": 60, "for": "8ms", "leg": "downstream", "direction": "to_server",
                              "packets": "ack", "action": "rst"}]}, trace_conn=0)
    c = rec.columns
    assert c["client_outcome"] == ["reset_on_probe", "ok"]
    assert c["client_closed_at_s"][0] == pytest.approx(60.006, abs=1e-9)
    assert c["server_outcome"][0] == "ok" and math.isnan(c["server_closed_at_s"][0])  # it never heard
    assert c["failed_requests"] == [0, 0]
    assert (rec.counters["fault_drops"], rec.counters["fault_rsts"]) == (0, 1)
    assert [e[:4] for e in rec.trace if e[1] == "fault"] == [(pytest.approx(60.005), "fault", "RST",
                                                              "faults[0]: RST for PROBE")]
    [probe] = [e for e in rec.trace if e[9] == "fault"]  # the probe, at its sender's capture
    assert probe[2] == "PROBE" and probe[0] == pytest.approx(60.004) and probe[11] == "faults[0]"


def test_a_fault_at_a_device_answers_in_front_of_it():
    """At the NLB (1 hop from the client): the request of 100.008 is answered at 100.009 with an RST that
    the client has at 100.010; the NLB's flow table never saw it (no LB RST, its flow ages out later)."""
    rec, _ = run({"duration": 600, "traffic": {"request_gap": {"fixed": 100}}, "lb": "aws-nlb-tcp",
                  "faults": [{"at": 100, "for": 1, "leg": "aws-nlb-tcp", "direction": "to_server",
                              "packets": "data", "action": "rst"}]}, trace_conn=0)
    c = rec.columns
    assert c["client_outcome"][0] == "reset_on_send" and c["resets"][0] == 1
    assert c["client_closed_at_s"][0] == pytest.approx(100.010, abs=1e-9)
    assert rec.counters["lb_rsts"] == 0 and rec.counters["fault_rsts"] == 1
    brief = [e[:4] for e in rec.trace]
    assert (pytest.approx(100.009), "fault", "RST", "faults[0]: RST for DATA") in brief
    assert (pytest.approx(350.009), "lb", "expired", "aws-nlb-tcp forgets the flow") in brief


def test_a_leg_faults_rst_crosses_the_middleboxes_back():
    """At the server's end of the leg, behind the NLB: the RST passes the NLB on its way back, which
    removes the flow (an RST ends an entry), so nothing expires later."""
    rec, _ = run({"duration": 600, "traffic": {"request_gap": {"fixed": 100}}, "lb": "aws-nlb-tcp",
                  "faults": [{"at": 100, "for": 1, "leg": "downstream", "direction": "to_server",
                              "packets": "data", "action": "rst"}]}, trace_conn=0)
    assert rec.columns["client_closed_at_s"][0] == pytest.approx(100.012, abs=1e-9)
    fault_at = [e[:4] for e in rec.trace].index((pytest.approx(100.010), "fault", "RST", "faults[0]: RST for DATA"))
    rst = rec.trace[fault_at + 1]  # the fault's RST, delivered to the client through the NLB
    assert rst[1:4] == ("lb", "RST", "faults[0]") and rst[9:11] == ("delivered", pytest.approx(100.012))
    assert not any(e[2] == "expired" for e in rec.trace)


def test_an_upstream_blackhole_gives_envoys_route_timeout():
    """Envoy's default route timeout (15 s): the request reaches Envoy at t + 1 ms, its copy to the upstream
    vanishes, the 504 is back at t + 15.002 s. Envoy's socket sends 8 DATA segments into the hole: the
    request, the TLP (+0.202) and RTO retransmissions at +0.404, 0.808, 1.616, 3.232, 6.464, 12.928; Envoy
    then closes it, and the orphan keeps retransmitting the request behind its FIN (R46, R47): +25.856 is
    still inside the 30 s window (the 9th drop), +51.712 gets through."""
    rec, _ = run({"duration": 300, "traffic": {"request_gap": {"fixed": 100}}, "envoy": {},
                  "faults": [{"at": 100, "for": 30, "leg": "upstream", "direction": "to_server", "packets": "data"}]})
    c = rec.columns
    assert c["leg"] == ["downstream", "upstream", "upstream"]
    assert c["route_timeouts"][0] == 1 and c["hang_s"][0] == pytest.approx(15.002, abs=1e-9)
    assert rec.counters["fault_drops"] == 9


def test_a_downstream_fault_on_a_terminating_lb_stands_at_the_leg_ends():
    """With an ALB splitting the leg, ``downstream`` faults stand at the client and at Envoy, not at the
    ALB's own sockets: a to_client fault resets the ALB's answers to the client (the sender, the server
    side of the client's connection), a to_server one the ALB's requests to Envoy (the client side of
    its back leg)."""
    for direction, side, leg in (("to_client", "server_outcome", "downstream"),
                                 ("to_server", "client_outcome", "lb_backend")):
        rec, _ = run({"duration": 60, "traffic": {"request_gap": {"fixed": 10}}, "lb": "aws-alb", "envoy": {},
                      "faults": [{"at": 5, "for": 60, "leg": "downstream", "direction": direction,
                                  "packets": "data", "action": "rst"}]})
        c = rec.columns
        reset = {(c["leg"][i], o) for i, o in enumerate(c[side]) if o not in ("ok", "closed_idle")}
        assert reset == {(leg, "reset_on_send")}, direction


# ----------------------------------------------------------------------------- config, sweeps, fingerprint
def _write(tmp_path, raw: dict):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_faults_are_swept_as_a_condition(tmp_path):
    fault = {"at": "100s", "for": "60s", "leg": "downstream", "direction": "to_server", "packets": "data"}
    loaded = load_config(_write(tmp_path, {**BASE, "duration": 600, "traffic": {"request_gap": {"fixed": 100}},
                                           "sweep": {"conditions": {"faults": [[], [fault]]}}}))
    points, knobs, conds = expand(loaded)
    assert (knobs, conds) == ([], ["faults"])
    assert [p.params["faults"] for p in points] == [
        "[]", '[{"action":"drop","at":100.0,"direction":"to_server","for":60.0,"leg":"downstream","packets":"data"}]']
    # The request of 100.004 is lost, with its TLP and RTO retransmissions at 100.408 + 0.404·(2^k − 1)
    # (R30, k = 0..7: the last at 151.716); the ninth, at 203.428, is after the window and gets through:
    # ten DATA segments dropped, and the request late enough that the run holds one request fewer.
    runs = [run_one(p.scenario, 1) for p in points]
    assert [r.columns["requests"] for r in runs] == [[6], [5]]
    assert [r.counters["fault_drops"] for r in runs] == [0, 10]
    assert scenario_digest(points[0].scenario) != scenario_digest(points[1].scenario)


def test_faults_as_a_knob_warn(tmp_path):
    loaded = load_config(_write(tmp_path, {**BASE, "sweep": {"faults": [[], [{"leg": "downstream"}]]}}))
    assert any("sweep.faults: an injected fault is the environment" in w for w in loaded.warnings)


def test_a_bad_swept_fault_names_the_axis_and_index(tmp_path):
    from sim.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_config(_write(tmp_path, {**BASE, "sweep": {"conditions": {"faults": [[], [{"leg": "nowhere"}]]}}}))
    assert "sweep.conditions.faults[1]" in str(exc.value) and "unknown leg 'nowhere'" in str(exc.value)


def test_set_replaces_the_fault_list(tmp_path):
    path = _write(tmp_path, {**BASE, "faults": [{"leg": "downstream"}]})
    loaded = load_config(path, ["faults=[{at: 5s, for: 1s, leg: downstream, packets: syn, action: rst}]"])
    (f,) = loaded.scenario.faults
    assert (f.at, f.for_, f.packets, f.action) == (5.0, 1.0, "syn", "rst")
    assert load_config(path, ["faults=[]"]).scenario.faults == []


def test_the_resolved_config_writes_faults_and_loads_again(tmp_path):
    loaded = load_config(_write(tmp_path, {**BASE, "faults": [{"at": "30s", "for": "1m", "leg": "downstream"},
                                                              {"leg": "downstream", "packets": "ack"}]}))
    text = resolved_config_yaml(loaded.scenario)
    again = tmp_path / "resolved.yaml"
    again.write_text(text)
    assert load_config(again).scenario.faults == loaded.scenario.faults
    assert yaml.safe_load(text)["faults"][0]["for"] == 60.0


def test_fault_counts_are_summed_over_replications():
    from sim.metrics.summary import combine

    rec, sc = run({"duration": 600, "traffic": {"request_gap": {"fixed": 100}},
                   "kernel": {"hz": 1000, "timers": "exact", "sysctl": {"net.ipv4.tcp_retries2": 3}},
                   "faults": [{"at": "100s", "for": "60s", "leg": "downstream", "packets": "data"},
                              {"leg": "downstream", "packets": "fin", "action": "rst"}]})
    one = summarize_one(rec, sc.duration)
    both = combine([one, one], [rec.run, rec.run])
    assert (both["fault_drops"], both["fault_rsts"]) == (12, 0)
    assert both["fault_counts"] == [{"fault": "faults[0]", "drops": 12, "rsts": 0},
                                    {"fault": "faults[1]", "drops": 0, "rsts": 0}]


def test_a_fault_that_takes_nothing_changes_nothing_and_queues_nothing():
    """A fault is a filter, not a process: one that matches no segment (its window after the run) leaves
    every record, counter and the event count as they are without it."""
    raw = {"duration": 3600, "connections": 3, "traffic": {"request_gap": {"exponential": 120}}, "lb": "aws-nlb-tcp",
           "envoy": {}, "client": {"keepalive": {"idle": "60s"}}, "kernel": {"hz": 250, "timers": "wheel"}}
    plain, _ = run(raw)
    idle, _ = run({**raw, "faults": [{"at": "2h", "leg": "downstream"}, {"at": "2h", "leg": "aws-nlb-tcp"},
                                     {"at": "2h", "leg": "upstream", "action": "rst"}]})
    from tests.test_shortcuts import same

    assert same(idle.columns, plain.columns) and idle.columns["requests"] != [0, 0, 0]
    assert idle.counters == plain.counters
    assert idle.run["events"] == plain.run["events"]

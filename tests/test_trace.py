"""``python -m sim trace`` (issue 15, point 5): the timeline of one connection, its pcap, the errors.

The scenario: configs/nlb.yaml scaled to one slot, exact timers and a fixed 400 s gap, with Envoy's
keepalive idle at 360 s, above the NLB's 350 s (unsafe). One middlebox, 1 ms per hop: a packet
crosses the path in 2 ms. Its times, from the kernel rules (kernel-keepalive.md):
- SYN at 0 (the slot opens at 0), SYN-ACK back at 0.004, the request at 0.004, Envoy's response at
  0.010 (after its upstream round trip, 2 x 2 ms), the client's ACK at 0.012 crosses the NLB at
  0.013: the flow expires at 0.013 + 350 = 350.013;
- Envoy's keepalive timer, armed at establishment (0.006) for 360 s (R6), fires at 360.006, finds the
  last segment received at 0.014 and re-arms for the rest (R16): a probe at 360.014 with
  seq = snd_nxt - 1 (R21); the NLB answers the late probe with an RST (its late_packet policy),
  which reaches Envoy at 360.016;
- the client's next request at 0.012 + 400 = 400.012 meets the forgotten flow and gets the NLB's
  RST at 400.014.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import dpkt
import pytest

from sim.cli import main
from sim.integrations.pcap_out import ENVOY_IP, ISN, MSS, VIP_IP, handshake_stand_in, write_pcap
from sim.metrics.packets import lines

ROOT = Path(__file__).resolve().parents[1]
NLB = str(ROOT / "configs" / "nlb.yaml")
ONE = ["--set", "connections=1", "--set", "kernel.timers=exact", "--set", "traffic.request_gap={fixed: 400s}",
       "--set", "duration=10m"]
UNSAFE = [*ONE, "--set", "envoy.listener.keepalive.idle=360"]
#: a safe run that keeps probing (gap 700 s, idle 300 s): probes at 300.014, 600.018, 1000.020
SAFE = ["--set", "connections=1", "--set", "kernel.timers=exact", "--set", "traffic.request_gap={fixed: 700s}",
        "--set", "duration=20m"]


def _trace(capsys, *args: str) -> tuple[int, list[str], str]:
    code = main(["trace", NLB, *args])
    out, err = capsys.readouterr()
    return code, [ln for ln in out.splitlines() if not ln.startswith("#")], err


def test_first_drop_timeline_at_the_client(capsys):
    code, got, _ = _trace(capsys, *UNSAFE, "--first-drop")
    assert code == 0
    assert got == [
        "      0.000000  client > envoy: Flags [S], seq 0, length 0  handshake",
        "      0.004000  envoy > client: Flags [S.], seq 0, ack 1, length 0  handshake",
        "      0.004000  client > envoy: Flags [.], seq 1, ack 1, length 0  handshake",
        "      0.004000  client > envoy: Flags [P.], seq 1:2, ack 1, length 1  data",
        "      0.008000  envoy > client: Flags [.], seq 1, ack 2, length 0  ACK",
        "      0.012000  envoy > client: Flags [P.], seq 1:2, ack 2, length 1  data",
        "      0.012000  client > envoy: Flags [.], seq 2, ack 2, length 0  ACK",
        "    350.013000  -- aws-nlb-tcp: expired: aws-nlb-tcp forgets the flow",
        "    360.016000  -- envoy: error: ECONNRESET (reset_on_probe)",
        "    400.012000  client > envoy: Flags [P.], seq 2:3, ack 2, length 1  data"
        "  [answered with RST by aws-nlb-tcp]",
        "    400.014000  aws-nlb-tcp > client: Flags [R], seq 2, length 0  LB-made RST (late packet)",
        "    400.014000  -- client: error: ECONNRESET (reset_on_send)",
    ]


def test_first_drop_timeline_at_envoy_shows_the_probe_and_the_lb_rst(capsys):
    code, got, _ = _trace(capsys, *UNSAFE, "--first-drop", "--at", "envoy")
    assert code == 0
    assert got[-5:] == [
        "    350.013000  -- aws-nlb-tcp: expired: aws-nlb-tcp forgets the flow",
        # snd_nxt is 2 (Envoy sent 1 byte, seq 1:2): the probe's seq is 1
        "    360.014000  envoy > client: Flags [.], seq 1, ack 2, length 0  keepalive probe"
        "  [answered with RST by aws-nlb-tcp]",
        "    360.016000  aws-nlb-tcp > envoy: Flags [R], seq 2, length 0  LB-made RST (late packet)",
        "    360.016000  -- envoy: error: ECONNRESET (reset_on_probe)",
        # the client's request never reached Envoy: only the client's own error shows, as a note
        "    400.014000  -- client: error: ECONNRESET (reset_on_send)",
    ]


def test_leg_picks_the_upstream_connection_of_the_slot(capsys):
    code = main(["trace", NLB, *ONE, "--conn", "0", "--leg", "upstream"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("# connection 1 (upstream leg)") and "capture at envoy" in out
    assert "      0.006000  envoy > upstream: Flags [S], seq 0, length 0  handshake" in out.splitlines()


@pytest.mark.parametrize("args, key", [
    ([], "--conn/--first-drop"),
    (["--conn", "0", "--first-drop"], "--conn/--first-drop"),
    (["--conn", "x"], "--conn"),
    (["--conn", "5000000"], "--conn"),  # slot 5 of a 1-slot run
    (["--conn", "7"], "--conn"),  # slot 0 opened fewer connections
    (["--first-drop"], "--first-drop"),  # the config's own setting is safe
    (["--conn", "0", "--leg", "sideways"], "--leg"),
    (["--conn", "0", "--at", "upstream"], "--at"),  # not an end of the downstream leg
    (["--conn", "0", "--at", "moon"], "--at"),
])
def test_errors_are_one_line_and_exit_2(capsys, args, key):
    code = main(["trace", NLB, *ONE, *args])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and f" {key}: " in err, err
    assert "Traceback" not in err


def _frames(path: Path) -> list[tuple[float, dpkt.ip.IP, dpkt.tcp.TCP]]:
    with open(path, "rb") as f:
        out = []
        for ts, buf in dpkt.pcap.Reader(f):
            ip = dpkt.ethernet.Ethernet(buf).data
            out.append((ts, ip, ip.data))
        return out


def test_pcap_round_trip(tmp_path, capsys):
    """dpkt reads back what the timeline printed: times, addresses, flags, seq/ack and lengths; the
    keepalive probes carry seq = snd_nxt - 1 and no payload."""
    pcap = tmp_path / "c.pcap"
    assert main(["trace", NLB, *SAFE, "--conn", "0", "--at", "envoy", "--pcap", str(pcap)]) == 0
    capsys.readouterr()
    frames = _frames(pcap)
    names = {dpkt.tcp.TH_SYN: "S", dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK: "S.", dpkt.tcp.TH_ACK: ".",
             dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK: "P."}
    envoy = socket.inet_aton(ENVOY_IP)
    got = [(round(ts, 6), ip.src == envoy, names[tcp.flags], tcp.seq - ISN["server" if ip.src == envoy else "client"],
            len(tcp.data)) for ts, ip, tcp in frames]
    assert got == [
        (0.002, False, "S", 0, 0), (0.002, True, "S.", 0, 0), (0.006, False, ".", 1, 0), (0.006, False, "P.", 1, 1),
        (0.006, True, ".", 1, 0), (0.01, True, "P.", 1, 1), (0.014, False, ".", 2, 0),
        (300.014, True, ".", 1, 0), (300.018, False, ".", 2, 0),  # probe (seq = snd_nxt - 1) and its answer
        (600.018, True, ".", 1, 0), (600.022, False, ".", 2, 0),
        (700.014, False, "P.", 2, 1), (700.014, True, ".", 2, 0), (700.016, True, "P.", 2, 1),
        (700.02, False, ".", 3, 0), (1000.02, True, ".", 2, 0), (1000.024, False, ".", 3, 0),
    ]
    ts, ip, tcp = frames[7]  # the first probe: Envoy to the client, acking the client's 1 byte
    assert tcp.ack == ISN["client"] + 2 and tcp.dport == 32768 and tcp.sport == 8443
    assert frames[1][2].ack == ISN["client"] + 1  # the SYN-ACK acks the SYN


def test_pcap_at_the_client_sees_the_vip_and_splits_long_messages(tmp_path, capsys):
    pcap = tmp_path / "c.pcap"
    assert main(["trace", NLB, *ONE, "--set", "traffic.response_bytes=4000", "--conn", "0",
                 "--pcap", str(pcap)]) == 0
    capsys.readouterr()
    frames = _frames(pcap)
    vip = socket.inet_aton(VIP_IP)
    assert {ip.src for _, ip, _ in frames} == {vip, socket.inet_aton("10.0.1.10")}
    data = [tcp for _, ip, tcp in frames if ip.src == vip and tcp.data]
    # a 4000-byte response: segments of MSS, MSS and the rest, back to back, PSH on the last only
    assert [len(t.data) for t in data[:3]] == [MSS, MSS, 4000 - 2 * MSS]
    assert [t.seq - ISN["server"] for t in data[:3]] == [1, 1 + MSS, 1 + 2 * MSS]
    assert [bool(t.flags & dpkt.tcp.TH_PUSH) for t in data[:3]] == [False, False, True]


def test_a_trace_without_syn_gets_the_stand_in_handshake(tmp_path):
    from sim.config.load import load_config
    from sim.execution.seeds import replication_seed
    from sim.execution.tasks import trace_one

    sc = load_config(NLB, [v for v in ONE if v != "--set"]).scenario
    trace = trace_one(sc, replication_seed(sc.seed, 0), 0)
    no_syn = [e for e in trace if e[2] not in ("SYN", "SYNACK") and e[8] != "handshake"]
    seen = lines(no_syn, "client")
    plan = {"client": ("10.0.1.10", 32768), "server": (VIP_IP, 443)}
    n = write_pcap(tmp_path / "a.pcap", seen, plan, handshake=False)
    frames = _frames(tmp_path / "a.pcap")
    assert n == len(frames) == len([ln for ln in seen if ln.dst]) + 3
    assert [f[2].flags for f in frames[:3]] == [dpkt.tcp.TH_SYN, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, dpkt.tcp.TH_ACK]
    assert [ln.note for ln in handshake_stand_in(1.0)] == ["stand-in"] * 3
    # with the model's own SYN there is no stand-in
    full = lines(trace, "client")
    assert write_pcap(tmp_path / "b.pcap", full, plan, handshake=True) == len([ln for ln in full if ln.dst])


TSHARK = shutil.which("tshark")


def _tshark(*args: str) -> subprocess.CompletedProcess:
    assert TSHARK is not None
    return subprocess.run([TSHARK, *args], capture_output=True, text=True, timeout=120)


IPVS = str(ROOT / "configs" / "envoy-ipvs.yaml")
CASES = {  # config, flags, capture point, the model's probes, retransmitted 1-byte segments there, and
    # those of them Wireshark takes for keep-alives (seq = next - 1: sent before the FIN took a number)
    "safe": (NLB, [*SAFE, "--conn", "0"], "envoy", 3, 0, 0),
    "unsafe-client": (NLB, [*UNSAFE, "--first-drop"], "client", 0, 0, 0),
    "unsafe-envoy": (NLB, [*UNSAFE, "--first-drop"], "envoy", 1, 0, 0),
    # Envoy's request into IPVS's forgotten flow: a TLP and 8 RTOs of a 1-byte segment (6 before Envoy's
    # 15 s route timeout closes the socket, then the orphan's behind its FIN until it dies, R46, R47)
    "retransmits": (IPVS, ["--set", "duration=1h", "--first-drop"], "envoy", 0, 9, 7),
}


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("case", sorted(CASES))
def test_tshark_reads_it_cleanly_and_flags_exactly_the_probes(tmp_path, capsys, case):
    config, args, at, probes, retransmits, lookalikes = CASES[case]
    pcap = tmp_path / "x.pcap"
    assert main(["trace", config, *args, "--at", at, "--pcap", str(pcap)]) == 0
    out = capsys.readouterr().out
    assert out.count("keepalive probe") == probes
    assert out.count("TLP") + out.count("RTO") == retransmits
    read = _tshark("-r", str(pcap))
    # tshark's own notice about running as root is not about the file
    warnings = [ln for ln in read.stderr.splitlines() if ln.strip() and "Running as user" not in ln]
    assert read.returncode == 0 and not warnings, read.stderr
    flagged = _tshark("-r", str(pcap), "-Y", "tcp.analysis.keep_alive and tcp.len == 0", "-T", "fields",
                      "-e", "frame.number")
    assert len(flagged.stdout.split()) == probes
    # Wireshark's rule (len <= 1, seq = next - 1) also takes a retransmitted 1-byte segment for one
    everything = _tshark("-r", str(pcap), "-Y", "tcp.analysis.keep_alive", "-T", "fields", "-e", "frame.number")
    assert len(everything.stdout.split()) == probes + lookalikes
    # no packet went missing before these capture points: no gap in the sequence numbers
    lost = _tshark("-r", str(pcap), "-Y", "tcp.analysis.lost_segment or tcp.analysis.ack_lost_segment")
    assert lost.stdout.strip() == ""


def test_fault_verdicts_show_in_the_timeline():
    """Fault injection marks its verdicts in the same trace: a packet with fate ``fault`` shows at
    its sender's capture only, and a verdict appended in the older four-field form is a note."""
    from sim.metrics.packets import render

    trace = [(1.0, "client", "DATA", "", "server", 0, 0, 5, "data", "fault", 1.001, "fault"),
             (2.0, "lb", "drop", "fault: drop to_server data")]
    assert render(lines(trace, "client")).splitlines() == [
        "      1.000000  client > server: Flags [P.], seq 1:6, ack 1, length 5  data  [dropped by a fault]",
        "      2.000000  -- LB: drop: fault: drop to_server data [fault]",
    ]
    assert [ln.event for ln in lines(trace, "server")] == ["drop"]

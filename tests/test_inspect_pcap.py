"""``inspect CAPTURE.pcap|.pcapng`` (issue 15, point 6): keepalive cadence, idle gaps, RSTs,
retransmission bursts and the verdict per flow, from small deterministic captures built with dpkt
(tests/pcap_builder.py) and from real Linux captures (tests/fixtures/pcap, see its README)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from sim.cli import main
from tests.pcap_builder import Conv, write

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pcap"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["inspect", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def inspect_json(capsys, path: Path, *extra: str) -> dict:
    rc, out, err = run(capsys, str(path), "--json", *extra)
    assert rc == 0, err
    return json.loads(out)


def keepalive_300_20(out: list, **kw) -> Conv:
    """The gateway (server) probes with TCP_KEEPIDLE 300, TCP_KEEPINTVL 20, TCP_KEEPCNT 4: two answered
    probes 300 s apart, then the path dies: four unanswered probes 20 s apart and the kernel's reset
    (kernel-keepalive.md §3, R19-R22)."""
    c = Conv(out, **kw)
    c.handshake(0)
    c.data(1, "c", 100)
    c.data(1.01, "s", 300)
    c.probe(301.011, "s")  # 300 s after the client's last ACK (1.011)
    c.probe(601.012, "s")  # 300 s after the answer
    for k in range(4):
        c.probe(901.013 + 20 * k, "s", answered=False)
    c.rst(981.013, "s")
    return c


def test_keepalive_idle_interval_and_count_are_observed(tmp_path, capsys):
    pkts: list = []
    keepalive_300_20(pkts)
    rep = inspect_json(capsys, write(tmp_path / "ka.pcap", pkts), "--lb", "aws-nlb-tcp")
    (f,) = rep["flows"]
    ka = f["keepalive"]
    assert (f["client"], f["server"], f["roles_from"]) == ("10.1.0.1:40000", "10.0.0.10:443", "syn")
    assert ka["by"] == "10.0.0.10:443" and ka["role"] == "server"
    assert ka["idle"] == pytest.approx(300.0, abs=1e-6)
    assert ka["interval"] == pytest.approx(20.0, abs=1e-6)
    assert (ka["count"], ka["probes"], ka["answered"]) == (4, 6, 2)
    assert ka["setting"]["idle"][1] == 300 and ka["setting"]["interval"][1] == 20
    assert f["max_idle_s"] == pytest.approx(300.0, abs=1e-6)
    (r,) = f["rsts"]
    assert r["from"] == "10.0.0.10:443" and "TCP_KEEPCNT" in r["hint"]
    v = f["verdict"]
    assert v["safe"] is True and v["predicted"]["safe"] is True
    assert rep["summary"]["text"] == "1 flows, 0 without keepalive, 0 reset after 350 s idle, 0 UNSAFE vs aws-nlb-tcp"


def test_verdict_is_inspects_hop_verdict_for_the_observed_idle(tmp_path, capsys):
    """The predicted part is exactly what ``inspect`` says of an EnvoyFilter with that TCP_KEEPIDLE."""
    from sim.integrations.effective import Effective
    from sim.integrations.inspect import verdict_dict
    from sim.integrations.verdict import Settings, verdict

    pkts: list = []
    keepalive_300_20(pkts)
    rep = inspect_json(capsys, write(tmp_path / "ka.pcap", pkts), "--lb", "aws-nlb-tcp", "--hz", "1000")
    pred = rep["flows"][0]["verdict"]["predicted"]
    assert pred == verdict_dict(verdict(Effective(True, 300, 20, 4), Settings(lb="aws-nlb-tcp", hz=1000)))


def test_a_setting_too_close_to_the_lb_is_unsafe_before_any_drop(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.data(1, "c", 10)
    c.probe(341.001, "s")  # TCP_KEEPIDLE 340 vs 350 s: nominally fine, not with timer-wheel lateness
    rep = inspect_json(capsys, write(tmp_path / "close.pcap", pkts), "--lb", "aws-nlb-tcp")
    v = rep["flows"][0]["verdict"]
    assert v["safe"] is False and "late" in v["reason"]


def test_reset_by_the_lb_after_350_s_idle(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.data(1, "c", 100)
    c.data(1.01, "s", 200)
    c.send_unacked(361.011, "c", 100)  # the client speaks after 360 s idle
    c.rst(361.0115, "s", ttl=250)  # the NLB answers in the server's name: RST to whichever side sends
    rep = inspect_json(capsys, write(tmp_path / "lb.pcap", pkts), "--lb", "aws-nlb-tcp")
    (f,) = rep["flows"]
    (r,) = f["rsts"]
    assert r["from"] == "10.0.0.10:443" and r["role"] == "server"
    assert r["after_idle_s"] == pytest.approx(360.0, abs=1e-6)
    assert "LB's reset" in r["hint"] and "TTL 250" in r["hint"]
    assert f["keepalive"] is None and f["closed"] == "rst"
    assert f["verdict"]["safe"] is False and "reset after 360.0 s idle" in f["verdict"]["reason"]
    s = rep["summary"]
    assert (s["reset_after_idle"], s["without_keepalive"], s["unsafe"]) == (1, 1, 1)
    assert s["text"] == "1 flows, 1 without keepalive, 1 reset after 350 s idle, 1 UNSAFE vs aws-nlb-tcp"


def test_a_flow_without_keepalive_is_not_judged_until_it_idles(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    for k in range(4):
        c.data(1 + 100 * k, "c", 50)
    rc, out, _ = run(capsys, str(write(tmp_path / "noka.pcap", pkts)), "--lb", "aws-nlb-tcp")
    assert rc == 0
    assert "keepalive: no probe seen" in out and "not judged" in out
    assert out.strip().endswith("summary: 1 flows, 1 without keepalive, 0 reset after 350 s idle, 0 UNSAFE vs "
                                "aws-nlb-tcp")


def test_retransmission_burst_and_a_packet_captured_twice(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.data(1, "c", 100)
    c.send_unacked(2, "c", 500)
    c.retransmit(2.0002, "c", 500)  # the same packet seen on a second interface: not a retransmission
    for t in (2.4, 3.2, 4.8):
        c.retransmit(t, "c", 500)
    c.ack(4.801, "s")
    rep = inspect_json(capsys, write(tmp_path / "rt.pcap", pkts))
    (f,) = rep["flows"]
    assert (f["retransmissions"], f["burst_count"]) == (3, 1)
    (b,) = f["retransmission_bursts"]
    assert (b["from"], b["segments"], b["ended"]) == ("10.1.0.1:40000", 3, "acked")
    assert b["at_s"] == pytest.approx(2.4) and b["duration_s"] == pytest.approx(2.4)
    assert rep["capture"]["duplicates"] == 1
    assert f["keepalive"] is None  # a retransmitted last byte is not a probe


@pytest.mark.parametrize("link", ["sll", "sll2"])
def test_linux_cooked_captures(tmp_path, capsys, link):
    pkts: list = []
    keepalive_300_20(pkts, link=link)
    rep = inspect_json(capsys, write(tmp_path / f"{link}.pcap", pkts, link=link))
    ka = rep["flows"][0]["keepalive"]
    assert (round(ka["idle"], 3), round(ka["interval"], 3), ka["count"]) == (300.0, 20.0, 4)


def test_pcapng_gives_the_same_report(tmp_path, capsys):
    pkts: list = []
    keepalive_300_20(pkts)
    a = inspect_json(capsys, write(tmp_path / "a.pcap", pkts))
    b = inspect_json(capsys, write(tmp_path / "a.pcapng", pkts, fmt="pcapng"))
    assert b["kind"] == "pcapng" and a["flows"] == b["flows"]


def test_ipv6_and_one_byte_probes(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts, client="2001:db8::1", server="2001:db8::10")
    c.handshake(0)
    c.data(1, "c", 10)
    c.probe(61.001, "c", garbage_byte=True)  # BSD-style probe with one garbage byte
    rep = inspect_json(capsys, write(tmp_path / "v6.pcap", pkts))
    ka = rep["flows"][0]["keepalive"]
    assert ka["by"] == "[2001:db8::1]:40000" and ka["idle"] == pytest.approx(60.0, abs=1e-6)


def test_capture_started_mid_flow_guesses_roles_and_still_sees_probes(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.data(1, "c", 10)
    c.probe(301.001, "s")
    c.probe(601.002, "s")
    later = [p for p in pkts if p[0] > 2]  # no handshake, no data: only probes and their answers
    rep = inspect_json(capsys, write(tmp_path / "mid.pcap", later))
    (f,) = rep["flows"]
    assert (f["client"], f["roles_from"]) == ("10.1.0.1:40000", "port")
    assert f["keepalive"]["probes"] == 1 and f["keepalive"]["idle"] == pytest.approx(300.0, abs=1e-6)


def test_port_reuse_after_a_reset_is_a_new_flow(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.rst(1, "s")
    c.nxt = {"c": 9000, "s": 90000}
    c.handshake(2)
    rep = inspect_json(capsys, write(tmp_path / "reuse.pcap", pkts))
    assert [(f["id"], f["packets"]) for f in sorted(rep["flows"], key=lambda f: f["id"])] == [(1, 4), (2, 3)]


def _damaged(tmp_path: Path) -> tuple[Path, int]:
    pkts: list = []
    keepalive_300_20(pkts)
    write(tmp_path / "good.pcap", pkts)
    return tmp_path / "bad.pcap", len(pkts)


def test_truncated_capture_is_partial_and_exits_2(tmp_path, capsys):
    bad, n = _damaged(tmp_path)
    data = (tmp_path / "good.pcap").read_bytes()
    bad.write_bytes(data[:-30])  # the last record cut off
    rc, out, err = run(capsys, str(bad))
    assert rc == 2
    assert any(line.startswith("PARTIAL: the capture is damaged at byte") for line in out.splitlines())
    assert "(partial: the capture is damaged" in out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: capture: truncated")
    assert f"covers the {n - 1} packets before it" in lines[0]
    rc, out, err = run(capsys, str(bad), "--json")
    rep = json.loads(out)
    assert rc == 2 and rep["partial"] is True and rep["capture"]["packets"] == n - 1
    assert rep["flows"][0]["keepalive"]["probes"] == 6  # everything before the damage is there


def test_corrupt_record_length_is_partial(tmp_path, capsys):
    bad, _ = _damaged(tmp_path)
    data = bytearray((tmp_path / "good.pcap").read_bytes())
    data[24 + 16 + 54 + 8:24 + 16 + 54 + 12] = b"\xff\xff\xff\x7f"  # the second record's caplen
    bad.write_bytes(bytes(data))
    rc, out, err = run(capsys, str(bad), "--json")
    rep = json.loads(out)
    assert rc == 2 and rep["partial"] and rep["capture"]["packets"] == 1
    assert rep["capture"]["damage"] == {"problem": "corrupt packet record (record length 2,147,483,647)",
                                        "offset": 24 + 16 + 54}
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("content", [b"NOT A CAPTURE AT ALL", b"\xd4\xc3\xb2", b""])
def test_bad_magic_exits_2_with_one_line(tmp_path, capsys, content):
    bad = tmp_path / "x.pcap"
    bad.write_bytes(content)
    rc, out, err = run(capsys, str(bad))
    lines = err.strip().splitlines()
    assert rc == 2 and out == "" and len(lines) == 1
    assert lines[0].startswith(f"error: {bad}: capture: ") and "(allowed: a libpcap (.pcap" in lines[0]
    rc, out, err = run(capsys, str(bad), "--json")
    assert rc == 2 and json.loads(out)["error"]["key"] == "capture"


def test_unsupported_link_type_exits_2(tmp_path, capsys):
    import dpkt

    with (tmp_path / "wifi.pcap").open("wb") as fh:
        dpkt.pcap.Writer(fh, linktype=127)  # radiotap
    rc, _, err = run(capsys, str(tmp_path / "wifi.pcap"))
    assert rc == 2 and "link type 127 is not read" in err


def test_flow_cap_bounds_memory_and_says_so(tmp_path, capsys):
    pkts: list = []
    for i in range(3):
        c = Conv(pkts, cport=40000 + i)
        c.handshake(i)
    rep = inspect_json(capsys, write(tmp_path / "many.pcap", pkts), "--max-flows", "2")
    assert len(rep["flows"]) == 2
    assert (rep["capture"]["untracked_packets"], rep["capture"]["untracked_syns"]) == (3, 1)
    assert "flow table full at 2 open flows" in rep["summary"]["text"]
    rc, _, err = run(capsys, str(tmp_path / "many.pcap"), "--max-flows", "0")
    assert rc == 2 and "--max-flows" in err


def test_closed_flows_are_freed_so_the_cap_counts_open_flows_only(tmp_path, capsys):
    pkts: list = []
    for i in range(5):
        c = Conv(pkts, cport=40000 + i)
        c.handshake(100 * i)
        c.rst(100 * i + 1, "s")
    rep = inspect_json(capsys, write(tmp_path / "seq.pcap", pkts), "--max-flows", "2")
    assert sorted(f["id"] for f in rep["flows"]) == [1, 2, 3, 4, 5]
    assert rep["capture"]["untracked_packets"] == 0


def test_fail_on_unsafe_exits_3(tmp_path, capsys):
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.data(400, "c", 10)
    rc, _, err = run(capsys, str(write(tmp_path / "idle.pcap", pkts)), "--lb", "aws-nlb-tcp", "--fail-on-unsafe")
    assert rc == 3 and "1 flow(s)" in err


# ----------------------------------------------------------------------------- real captures
def test_real_linux_capture_lo_any_and_pcapng_agree(capsys):
    """Captured from the real kernel (tests/fixtures/pcap/README.md): the server's keepalive 3/1/3."""
    reps = [inspect_json(capsys, FIXTURES / name) for name in
            ("linux_keepalive_lo.pcap", "linux_keepalive_any.pcap", "linux_keepalive_lo.pcapng")]
    assert [r["capture"]["linktypes"] for r in reps] == [[1], [276], [1]]
    for rep in reps:
        ka_flow, plain = sorted(rep["flows"], key=lambda f: f["id"])
        ka = ka_flow["keepalive"]
        assert ka["by"] == "127.0.0.1:8443" and ka["setting"]["idle"] == [3, 3]
        assert ka["setting"]["interval"] == [1, 1] and ka["count"] == 3
        assert (ka["probes"], ka["answered"]) == (5, 2)
        assert ka_flow["rsts"][0]["from"] == "127.0.0.1:8443" and ka_flow["closed"] == "rst"
        assert plain["keepalive"] is None and plain["closed"] == "fin"


def _tshark_keepalives(path: Path) -> int:
    out = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", "tcp.analysis.keep_alive", "-T", "fields", "-e",
                          "frame.number"], capture_output=True, text=True, check=True).stdout
    return len(out.split())


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_keepalive_count_matches_tshark(tmp_path, capsys):
    pkts: list = []
    keepalive_300_20(pkts)
    c = Conv(pkts, cport=40001)
    c.handshake(0)
    c.data(1, "c", 10)
    c.probe(61.001, "c", garbage_byte=True)
    built = write(tmp_path / "both.pcap", pkts)
    for path in (built, FIXTURES / "linux_keepalive_lo.pcap", FIXTURES / "linux_keepalive_any.pcap"):
        rep = inspect_json(capsys, path)
        mine = sum(f["keepalive"]["probes"] for f in rep["flows"] if f["keepalive"])
        assert mine == _tshark_keepalives(path), path


def test_hop_verdict_uses_the_hops_own_interval():
    """With TCP_KEEPINTVL >= TCP_KEEPIDLE + RTT probes come every TCP_KEEPINTVL (R16); a hop's own interval
    (3/1/3 here) must be used, not the 75 s default, which made the margin 350 - 75 - g(75)."""
    from sim.integrations.effective import Effective
    from sim.integrations.verdict import Settings, verdict

    v = verdict(Effective(True, 3, 1, 3), Settings(lb="aws-nlb-tcp", hz=250))
    assert v is not None and v.margin_s == pytest.approx(350 - (3 + 0.256 + 0.002), abs=1e-9)


def test_a_zero_length_probe_is_seen_even_when_the_last_ack_is_not_in_the_capture(tmp_path, capsys):
    """A pure ACK can be missing from a capture (lost by tcpdump, or a writer that omits it); a zero-length
    segment at snd_nxt - 1 is still a probe. A one-byte one needs the peer to have acked everything,
    else it is the last byte retransmitted."""
    pkts: list = []
    c = Conv(pkts)
    c.handshake(0)
    c.data(1, "c", 10)
    c.send_unacked(1.01, "s", 300)  # the client's ACK of this is not captured
    c.probe(301.02, "s")
    rep = inspect_json(capsys, write(tmp_path / "noack.pcap", pkts))
    ka = rep["flows"][0]["keepalive"]
    assert ka is not None and ka["probes"] == 1 and ka["idle"] == pytest.approx(300.02, abs=1e-6)


def test_a_capture_on_stdin(tmp_path):
    """`tcpdump -w - | python -m sim inspect -`: recognised by its magic number."""
    import sys

    root = Path(__file__).resolve().parent.parent
    data = (FIXTURES / "linux_keepalive_lo.pcap").read_bytes()
    done = subprocess.run([sys.executable, "-m", "sim", "inspect", "-", "--json"], input=data, capture_output=True,
                          cwd=root, check=True)
    rep = json.loads(done.stdout)
    assert rep["file"] == "<stdin>" and rep["summary"]["flows"] == 2

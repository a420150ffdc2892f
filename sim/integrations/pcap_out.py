"""``trace --pcap``: one connection's packets, as a capture at one point of its path, written as a
classic libpcap file (Ethernet / IPv4 / TCP) with dpkt.

The packets and their numbers are ``sim.metrics.packets.lines(trace, at)``, the same lines the
timeline prints. The addresses follow the plan below (docs/outputs.md, "Address plan"):

- the client is 10.0.1.10; it reaches the downstream middlebox's virtual IP 10.0.0.10:443, which
  forwards to Envoy's listener 10.0.2.10:8443 keeping the client's address (destination NAT, as an
  NLB with client IP preservation does); with no middlebox the client reaches Envoy directly;
- Envoy connects from 10.0.2.10 to the upstream server 10.0.3.10:8080; a middlebox on that leg
  (``upstream.lb``, a NAT gateway) rewrites the source to 10.0.4.10 (source NAT, same port);
- a terminating LB's back leg leaves from 10.0.0.11;
- an opener's port is 32768 + (connection id mod 28232); MAC addresses are 02:00 followed by the
  IPv4 address; each side's initial sequence number is fixed (``ISN``); timestamps are the
  simulated time, t = 0 at the Unix epoch.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from pathlib import Path

import dpkt

from sim.metrics.packets import Line

CLIENT_IP, VIP_IP, VIP_PORT = "10.0.1.10", "10.0.0.10", 443
LB_BACKEND_IP = "10.0.0.11"
ENVOY_IP, ENVOY_PORT = "10.0.2.10", 8443
UPSTREAM_IP, UPSTREAM_PORT = "10.0.3.10", 8080
NAT_IP = "10.0.4.10"
#: initial sequence numbers of the leg's opener ("client") and acceptor ("server")
ISN = {"client": 0x10000000, "server": 0x20000000}
WINDOW = 65535
#: payload bytes per segment: a message longer than this goes out as several segments (no options)
MSS = 1460
_FLAGS = {"S": dpkt.tcp.TH_SYN, "S.": dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, ".": dpkt.tcp.TH_ACK,
          "P.": dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, "F.": dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK,
          "R": dpkt.tcp.TH_RST, "R.": dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK}

Addr = tuple[str, int]


def ephemeral_port(conn_id: int) -> int:
    """The opener's source port for connection ``conn_id``."""
    return 32768 + conn_id % 28232


def address_plan(leg: str, lane: str, conn_id: int, envoy: bool, middleboxes: int) -> dict[str, Addr]:
    """The addresses of the leg's opener (``client``) and acceptor (``server``) as a capture on the
    ``lane`` end of the path sees them (module docstring)."""
    port = ephemeral_port(conn_id)
    if leg == "upstream":
        opener, acceptor = (ENVOY_IP, port), (UPSTREAM_IP, UPSTREAM_PORT)
        if middleboxes and lane == "server":
            opener = (NAT_IP, port)  # source NAT on the way to the upstream
        return {"client": opener, "server": acceptor}
    acceptor = (ENVOY_IP, ENVOY_PORT) if envoy else (UPSTREAM_IP, UPSTREAM_PORT)
    if leg == "lb_backend":
        return {"client": (LB_BACKEND_IP, port), "server": acceptor}
    if middleboxes and lane == "client":
        acceptor = (VIP_IP, VIP_PORT)  # the client only ever sees the virtual IP
    return {"client": (CLIENT_IP, port), "server": acceptor}


def _mac(ip: str) -> bytes:
    return b"\x02\x00" + socket.inet_aton(ip)


def handshake_stand_in(first_s: float) -> list[Line]:
    """STAND-IN, only for a trace with no SYN: a SYN, SYN-ACK and ACK just before the first packet,
    so that Wireshark sees a whole stream (initial sequence numbers, relative numbering). A trace
    with the model's own handshake never gets these (``write_pcap``)."""
    t = first_s - 0.003
    return [Line(t + 0.001 * k, "", "sent", kind, src, dst, flags, seq, seq + (k < 2), ack, 0, "handshake", "", "",
                 "stand-in")
            for k, (kind, src, dst, flags, seq, ack) in enumerate((("SYN", "client", "server", "S", 0, -1),
                                                                    ("SYNACK", "server", "client", "S.", 0, 1),
                                                                    ("ACK", "client", "server", ".", 1, 1)))]


def _segments(ln: Line) -> Iterable[tuple[int, int, int]]:
    """(relative seq, payload bytes, flags) of the segments one line's packet goes out as."""
    flags = _FLAGS[ln.flags]
    if ln.length <= MSS:
        yield ln.seq, ln.length, flags
        return
    for off in range(0, ln.length, MSS):
        last = off + MSS >= ln.length
        yield ln.seq + off, min(MSS, ln.length - off), flags if last else flags & ~dpkt.tcp.TH_PUSH


def write_pcap(path: str | Path, seen: list[Line], addrs: dict[str, Addr], handshake: bool) -> int:
    """Write the packets of ``seen`` (a capture's lines: ``lines(trace, at)``) to ``path``; with
    ``handshake`` False (the trace has no SYN) the stand-in handshake goes first. Returns the
    number of frames written."""
    packets = [ln for ln in seen if ln.dst]  # the verdicts that are not packets stay out
    if not handshake and packets:
        packets = handshake_stand_in(packets[0].t_s) + packets
    ip_id = {"client": 0, "server": 0}
    frames = 0
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535)
        for ln in packets:
            # a middlebox's own packet claims the address of the end it stands in for
            src_end = "client" if ln.dst == "server" else "server"
            (sip, sport), (dip, dport) = addrs[src_end], addrs[ln.dst]
            for rel, size, flags in _segments(ln):
                tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=(ISN[src_end] + rel) % 2**32,
                                   ack=(ISN[ln.dst] + ln.ack) % 2**32 if ln.ack >= 0 else 0,
                                   off=5, flags=flags, win=WINDOW, data=b"\0" * size)
                ip_id[src_end] = (ip_id[src_end] + 1) % 65536
                ip = dpkt.ip.IP(src=socket.inet_aton(sip), dst=socket.inet_aton(dip), p=dpkt.ip.IP_PROTO_TCP,
                                ttl=64, id=ip_id[src_end], data=tcp)
                ip.len = 20 + 20 + size
                eth = dpkt.ethernet.Ethernet(src=_mac(sip), dst=_mac(dip), type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
                # whole microseconds, so the writer never rounds a fraction up to a full second
                writer.writepkt(bytes(eth), ts=round(ln.t_s * 1e6) / 1e6)
                frames += 1
    return frames

"""Deterministic small captures for the ``inspect CAPTURE.pcap`` tests, written with dpkt.

A :class:`Conv` is one TCP connection whose sequence numbers it keeps, so a test reads as the
packets a capture would hold: ``c.handshake(0)``, ``c.data(1, "c", 100)``, ``c.probe(301, "s")`` ...
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

LINKS = {"eth": dpkt.pcap.DLT_EN10MB, "sll": dpkt.pcap.DLT_LINUX_SLL, "sll2": dpkt.pcap.DLT_LINUX_SLL2}
S, A, P, R, F = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_RST, dpkt.tcp.TH_FIN


def frame(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int, payload: bytes = b"",
          ttl: int = 64, link: str = "eth", win: int = 65535) -> bytes:
    """One TCP segment as a frame of ``link`` (eth, sll, sll2), IPv4 or IPv6 by the address."""
    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq & 0xFFFFFFFF, ack=ack & 0xFFFFFFFF, flags=flags, win=win,
                       data=payload)
    if ":" in src:
        ip: dpkt.Packet = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src),
                                       dst=socket.inet_pton(socket.AF_INET6, dst), nxt=6, hlim=ttl, data=tcp)
        ip.plen = len(bytes(tcp))
        etype = 0x86DD
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=6, ttl=ttl, data=tcp)
        ip.len = 20 + len(bytes(tcp))
        etype = 0x0800
    if link == "eth":
        return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=etype, data=ip))
    if link == "sll":
        return bytes(dpkt.sll.SLL(type=0, hrd=1, hlen=6, hdr=b"\x02" * 6 + b"\x00\x00", ethtype=etype, data=ip))
    return bytes(dpkt.sll2.SLL2(protocol=etype, ifindex=2, hatype=1, pkttype=0, addrlen=6,
                                addr=b"\x02" * 6 + b"\x00\x00", data=ip))


class Conv:
    """A TCP connection between client ``c`` and server ``s``; packets go to ``out`` as (t, frame)."""

    def __init__(self, out: list[tuple[float, bytes]], client: str = "10.1.0.1", cport: int = 40000,
                 server: str = "10.0.0.10", sport: int = 443, link: str = "eth") -> None:
        self.out = out
        self.addr = {"c": (client, cport), "s": (server, sport)}
        self.nxt = {"c": 1000, "s": 50000}
        self.link = link

    def _send(self, t: float, who: str, seq: int, flags: int, payload: bytes = b"", ttl: int = 64,
              ack: int | None = None) -> None:
        other = "s" if who == "c" else "c"
        (src, sp), (dst, dp) = self.addr[who], self.addr[other]
        self.out.append((t, frame(src, dst, sp, dp, seq, self.nxt[other] if ack is None else ack, flags, payload,
                                  ttl, self.link)))

    def handshake(self, t: float) -> None:
        self._send(t, "c", self.nxt["c"], S, ack=0)
        self.nxt["c"] += 1
        self._send(t + 0.001, "s", self.nxt["s"], S | A)
        self.nxt["s"] += 1
        self._send(t + 0.002, "c", self.nxt["c"], A)

    def data(self, t: float, who: str, n: int) -> None:
        """``n`` bytes from ``who``, and the peer's ACK 1 ms later."""
        self._send(t, who, self.nxt[who], P | A, b"x" * n)
        self.nxt[who] += n
        self.ack(t + 0.001, "s" if who == "c" else "c")

    def ack(self, t: float, who: str) -> None:
        self._send(t, who, self.nxt[who], A)

    def probe(self, t: float, who: str, answered: bool = True, garbage_byte: bool = False) -> None:
        """A keepalive probe (seq = snd_nxt - 1, R21) and, when answered, the duplicate ACK (R22)."""
        self._send(t, who, self.nxt[who] - 1, A, b"\x00" if garbage_byte else b"")
        if answered:
            self.ack(t + 0.001, "s" if who == "c" else "c")

    def retransmit(self, t: float, who: str, n: int) -> None:
        """The last ``n`` bytes ``who`` sent, again."""
        self._send(t, who, self.nxt[who] - n, P | A, b"x" * n)

    def send_unacked(self, t: float, who: str, n: int) -> None:
        self._send(t, who, self.nxt[who], P | A, b"x" * n)
        self.nxt[who] += n

    def rst(self, t: float, who: str, ttl: int = 64) -> None:
        self._send(t, who, self.nxt[who], R, ttl=ttl, ack=0)

    def fin(self, t: float) -> None:
        self._send(t, "c", self.nxt["c"], F | A)
        self.nxt["c"] += 1
        self._send(t + 0.001, "s", self.nxt["s"], F | A)
        self.nxt["s"] += 1
        self.ack(t + 0.002, "c")


def write(path: Path, packets: list[tuple[float, bytes]], link: str = "eth", fmt: str = "pcap",
          t0: float = 1_700_000_000.0) -> Path:
    """Write ``packets`` (time-sorted) as a pcap or pcapng file."""
    with path.open("wb") as fh:
        if fmt == "pcap":
            w: dpkt.pcap.Writer | dpkt.pcapng.Writer = dpkt.pcap.Writer(fh, snaplen=65535, linktype=LINKS[link])
        else:
            w = dpkt.pcapng.Writer(fh, snaplen=65535, linktype=LINKS[link])
        for t, buf in sorted(packets, key=lambda p: p[0]):
            w.writepkt(buf, ts=t0 + t)
    return path

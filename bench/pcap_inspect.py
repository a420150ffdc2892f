"""Benchmark: ``inspect CAPTURE.pcap`` throughput (packets/s) and peak memory on a built capture.

    python bench/pcap_inspect.py [--size 200MB] [--flows 10000] [--keep]
    python bench/pcap_inspect.py --size 1GB          # the issue's figure; needs ~1 GB free in the temp dir
    python bench/pcap_inspect.py --format pcapng     # the same as pcapng (dumpcap, Wireshark)
    python bench/pcap_inspect.py --open-flows 300000 # connections that never close: the flow table's worst case

Builds a libpcap capture (Ethernet/IPv4/TCP, what ``tcpdump -w`` writes) in the temp directory:
``--flows`` connections to a gateway at 10.0.0.10:443, each a 10-second round at a time. A flow
sends a request (100 B), a response (300 B) and an ACK every 310 s and in between, after 300 s
idle, the gateway's keepalive probe and its answer. Every 50th flow retransmits its response twice
in each cycle; every 100th has no keepalive, is reset by the "LB" (TTL 250) after 360 s idle, and
opens a new connection on the same ports. Then it runs ``python -m sim inspect FILE --lb
aws-nlb-tcp --json`` in a child process and reports packets/s (wall and CPU), peak RSS of the
child (``ru_maxrss``), and the child's summary line. The capture is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dpkt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ETH = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
SERVER = bytes([10, 0, 0, 10])
ROUND_S = 10.0
KA_ROUNDS, CYCLE, NOKA_CYCLE = 30, 31, 37
S, A, P, R, F = 0x02, 0x10, 0x08, 0x04, 0x01
_IP = struct.Struct(">BBHHHBBH4s4s")
_TCP = struct.Struct(">HHIIHHHH")
PAYLOAD = b"x" * 400


def frame(src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int, flags: int, n: int,
          ttl: int = 64) -> bytes:
    """An Ethernet/IPv4/TCP frame with ``n`` bytes of payload (checksums left 0: nothing here reads them)."""
    return (ETH + _IP.pack(0x45, 0, 40 + n, 0, 0x4000, ttl, 6, 0, src, dst)
            + _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x5000 | flags, 65535, 0, 0) + PAYLOAD[:n])


class Conn:
    """One client connection's sequence numbers."""

    def __init__(self, i: int) -> None:
        self.ip = bytes([10, 1, (i >> 8) & 0xFF, i & 0xFF])
        self.port = 20000 + (i % 40000)
        self.c, self.s = 1000 + i * 7919, 5000 + i * 104729
        self.retrans = i % 50 == 25
        self.noka = i % 100 == 0

    def handshake(self, w, t: float) -> None:
        ip, p = self.ip, self.port
        w(frame(ip, SERVER, p, 443, self.c, 0, S, 0), t)
        w(frame(SERVER, ip, 443, p, self.s, self.c + 1, S | A, 0), t + 0.0005)
        self.c += 1
        self.s += 1
        w(frame(ip, SERVER, p, 443, self.c, self.s, A, 0), t + 0.001)

    def exchange(self, w, t: float) -> None:
        ip, p = self.ip, self.port
        w(frame(ip, SERVER, p, 443, self.c, self.s, A | P, 100), t)
        self.c += 100
        w(frame(SERVER, ip, 443, p, self.s, self.c, A | P, 300), t + 0.002)
        if self.retrans:
            w(frame(SERVER, ip, 443, p, self.s, self.c, A | P, 300), t + 0.21)
            w(frame(SERVER, ip, 443, p, self.s, self.c, A | P, 300), t + 0.63)
        self.s += 300
        w(frame(ip, SERVER, p, 443, self.c, self.s, A, 0), t + (0.64 if self.retrans else 0.003))

    def keepalive(self, w, t: float) -> None:
        ip, p = self.ip, self.port
        w(frame(SERVER, ip, 443, p, self.s - 1, self.c, A, 0), t)
        w(frame(ip, SERVER, p, 443, self.c, self.s, A, 0), t + 0.001)

    def reset_and_reopen(self, w, t: float) -> None:
        ip, p = self.ip, self.port
        w(frame(ip, SERVER, p, 443, self.c, self.s, A | P, 100), t)
        w(frame(SERVER, ip, 443, p, self.s, 0, R, 0, ttl=250), t + 0.0004)
        self.c += 5000
        self.s += 7000
        self.handshake(w, t + 1.0)


def build(path: Path, size: int, flows: int, fmt: str = "pcap") -> int:
    """Write the capture (libpcap, or pcapng with ``fmt``); returns the number of packets."""
    conns = [Conn(i) for i in range(flows)]
    buckets: dict[int, list[Conn]] = {}
    noka: dict[int, list[Conn]] = {}
    for i, c in enumerate(conns):
        (noka if c.noka else buckets).setdefault(i % (NOKA_CYCLE if c.noka else CYCLE), []).append(c)
    count = 0
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, snaplen=65535) if fmt == "pcap" else dpkt.pcapng.Writer(fh, snaplen=65535)

        def w(buf: bytes, ts: float) -> None:
            nonlocal count
            writer.writepkt(buf, ts)
            count += 1

        t0 = 1_700_000_000.0
        for i, c in enumerate(conns):
            c.handshake(w, t0 + i * 0.0001)
        r = 0
        while fh.tell() < size:
            t = t0 + 5 + r * ROUND_S
            for j, c in enumerate(buckets.get(r % CYCLE, ())):
                c.exchange(w, t + j * 0.0001)
            for j, c in enumerate(buckets.get((r - KA_ROUNDS) % CYCLE, ())):
                c.keepalive(w, t + 1 + j * 0.0001)
            for j, c in enumerate(noka.get(r % NOKA_CYCLE, ())):
                c.exchange(w, t + 2 + j * 0.0001)
            for j, c in enumerate(noka.get((r - 36) % NOKA_CYCLE, ())):
                c.reset_and_reopen(w, t + 3 + j * 0.0001)
            r += 1
    return count


def build_open(path: Path, n: int) -> int:
    """``n`` connections that open (SYN, SYN-ACK) and never close: every flow stays open, the worst
    case for the flow table (a SYN flood, or a capture cut short)."""
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh, snaplen=65535)
        for i in range(n):
            ip, port, t = bytes([10, 2 + (i >> 16), (i >> 8) & 0xFF, i & 0xFF]), 20000 + i % 40000, 1.7e9 + i * 1e-4
            writer.writepkt(frame(ip, SERVER, port, 443, 1000, 0, S, 0), t)
            writer.writepkt(frame(SERVER, ip, 443, port, 5000, 1001, S | A, 0), t + 5e-5)
    return 2 * n


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "K": 10**3, "M": 10**6, "G": 10**9}
    for u in sorted(units, key=len, reverse=True):
        if text.upper().endswith(u):
            return int(float(text[: -len(u)]) * units[u])
    return int(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="200MB", help="capture size, e.g. 200MB or 1GB (default 200MB)")
    ap.add_argument("--flows", type=int, default=10000)
    ap.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    ap.add_argument("--open-flows", type=int, default=0, metavar="N",
                    help="instead: N connections that never close (the flow table's worst case; --size is ignored)")
    ap.add_argument("--dir", default=None, help="where to write the capture (default: the temp directory)")
    ap.add_argument("--keep", action="store_true", help="keep the capture")
    ap.add_argument("--out")
    args = ap.parse_args()
    fd, name = tempfile.mkstemp(suffix="." + args.format, dir=args.dir)
    os.close(fd)
    path = Path(name)
    try:
        t = time.perf_counter()
        if args.open_flows:
            packets = build_open(path, args.open_flows)
        else:
            packets = build(path, parse_size(args.size), args.flows, args.format)
        build_s = time.perf_counter() - t
        size = path.stat().st_size
        cmd = [sys.executable, "-m", "sim", "inspect", str(path), "--lb", "aws-nlb-tcp", "--json"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, cwd=ROOT, check=True)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    rep = json.loads(done.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert rep["capture"]["packets"] == packets, (rep["capture"]["packets"], packets)
    return report({
        "command": f"python -m sim inspect CAPTURE.{args.format} --lb aws-nlb-tcp --json", "format": args.format,
        "capture_bytes": size, "packets": packets, "flows_built": args.open_flows or args.flows,
        "build_s": round(build_s, 1),
        "flows_reported": rep["summary"]["flows"], "untracked_packets": rep["capture"]["untracked_packets"],
        "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "packets_per_s_wall": round(packets / wall), "packets_per_s_cpu": round(packets / cpu),
        "peak_rss_mib": round(after.ru_maxrss / 1024, 1), "summary": rep["summary"]["text"],
        "load_avg_1min_after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "kept": str(path) if args.keep else None,
    }, args.out)


if __name__ == "__main__":
    sys.exit(main())

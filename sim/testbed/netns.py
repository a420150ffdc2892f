"""Three network namespaces per case: client ── lb ── server, joined by veth pairs.

The lb namespace forwards and runs netfilter conntrack as the idle-timeout middlebox: a short
``nf_conntrack_tcp_timeout_established``, ``nf_conntrack_tcp_loose=0`` (a mid-stream packet never
re-creates a forgotten flow) and an nftables rule that answers such a packet with a TCP reset, or
drops it. Addresses exist only inside these namespaces; nothing is routed anywhere else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from dataclasses import dataclass, field

PREFIX = "ksim"
CLIENT_IP, LB_C_IP, LB_S_IP, SERVER_IP = "10.231.1.1", "10.231.1.2", "10.231.2.2", "10.231.2.1"


class Unavailable(RuntimeError):
    """The testbed cannot run here (no root, no netns, no nft)."""


def run(*cmd: str, input: str | None = None) -> str:
    res = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def check_available() -> None:
    """Raise Unavailable with the reason when namespaces or nftables cannot be used."""
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespaces and nftables)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise Unavailable(f"'{tool}' is not installed (Debian: apt-get install iproute2 nftables)")
    probe = f"{PREFIX}-probe-{os.getpid()}"
    try:
        run("ip", "netns", "add", probe)
    except RuntimeError as exc:
        raise Unavailable(f"cannot create a network namespace: {exc}") from None
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def sweep_stale() -> None:
    """Remove namespaces left by a run whose process is gone (e.g. killed with SIGKILL)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        parts = name.split("-")
        if len(parts) >= 3 and parts[0] == PREFIX and parts[1].isdigit():
            pid = int(parts[1])
            if pid != os.getpid() and not os.path.exists(f"/proc/{pid}"):
                _delete(name)


def _delete(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@dataclass(eq=False)
class Testbed:
    """client/lb/server namespaces for one case; use as a context manager (always cleaned up)."""

    tag: str
    lb_timeout_s: int
    late: str  # "rst" or "drop"
    client_sysctl: dict[str, int] = field(default_factory=dict)
    server_sysctl: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base = f"{PREFIX}-{os.getpid()}-{self.tag}"
        self.client, self.lb, self.server = f"{base}-c", f"{base}-l", f"{base}-s"

    def __enter__(self) -> Testbed:
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def ns(self, name: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", name, *cmd]

    def _up(self) -> None:
        for ns in (self.client, self.lb, self.server):
            run("ip", "netns", "add", ns)
            run(*self.ns(ns, "ip", "link", "set", "lo", "up"))
        vc, vs = f"kc{self.tag}", f"ks{self.tag}"
        run("ip", "link", "add", vc + "a", "netns", self.client, "type", "veth", "peer", "name", vc + "b",
            "netns", self.lb)
        run("ip", "link", "add", vs + "a", "netns", self.server, "type", "veth", "peer", "name", vs + "b",
            "netns", self.lb)
        for ns, dev, ip in ((self.client, vc + "a", CLIENT_IP), (self.lb, vc + "b", LB_C_IP),
                            (self.lb, vs + "b", LB_S_IP), (self.server, vs + "a", SERVER_IP)):
            run(*self.ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", dev))
            run(*self.ns(ns, "ip", "link", "set", dev, "up"))
            # no offloads: segments on the wire are what the kernel built
            subprocess.run(self.ns(ns, "ip", "link", "set", dev, "gso_max_size", "65536"), capture_output=True)
        run(*self.ns(self.client, "ip", "route", "add", "default", "via", LB_C_IP))
        run(*self.ns(self.server, "ip", "route", "add", "default", "via", LB_S_IP))
        run(*self.ns(self.lb, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"))
        verdict = "reject with tcp reset" if self.late == "rst" else "drop"
        # loading the table loads conntrack in this namespace; then its sysctls exist
        run(*self.ns(self.lb, "nft", "-f", "-"), input=f"""
table inet ksim {{
  chain forward {{
    type filter hook forward priority 0; policy accept;
    ct state invalid meta l4proto tcp {verdict}
  }}
}}
""")
        for key, value in (("net.netfilter.nf_conntrack_tcp_timeout_established", self.lb_timeout_s),
                           ("net.netfilter.nf_conntrack_tcp_loose", 0),
                           ("net.netfilter.nf_conntrack_tcp_be_liberal", 1)):
            run(*self.ns(self.lb, "sysctl", "-q", "-w", f"{key}={value}"))
        for ns, sysctls in ((self.client, self.client_sysctl), (self.server, self.server_sysctl)):
            for key, value in sysctls.items():
                run(*self.ns(ns, "sysctl", "-q", "-w", f"{key}={value}"))

    def down(self) -> None:
        for ns in (self.client, self.lb, self.server):
            _delete(ns)

    def keepalive_probes(self, ns: str) -> int:
        """TcpExtTCPKeepAlive of a namespace (per-netns MIB): probes sent there so far."""
        text = run(*self.ns(ns, "cat", "/proc/net/netstat"))
        lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
        names, values = lines[0], lines[1]
        return int(values[names.index("TCPKeepAlive")])

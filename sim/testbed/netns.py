"""Three network namespaces per case: client ── lb ── server, joined by veth pairs.

The lb namespace forwards and runs netfilter conntrack as the idle-timeout middlebox: a short
``nf_conntrack_tcp_timeout_established``, ``nf_conntrack_tcp_loose=0`` (a mid-stream packet never
re-creates a forgotten flow) and an nftables rule that answers such a packet with a TCP reset, or
drops it. It also counts, on the wire from the client, the SYNs and FINs the client sends (named
nft counters), and can drop every SYN or every FIN the client sends (a fault, for the handshake and
orphan cases). Addresses exist only inside these namespaces; nothing is routed anywhere else.

Everything a run creates lives inside its namespaces (the veths are created directly in them, the
nft table in the lb namespace), and every name carries the run id (``ksim-PID.START-NN-c|l|s``), so
deleting a run's namespaces removes all of it, and a later run can tell a dead run's leftovers from
a live run's (``sweep_stale``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "ksim"
CLIENT_IP, LB_C_IP, LB_S_IP, SERVER_IP = "10.231.1.1", "10.231.1.2", "10.231.2.2", "10.231.2.1"


#: nft matches for the segments a testbed counts and can drop: a SYN is the one without ACK (a SYN-ACK
#: is the server's); a FIN is any segment with FIN, retransmissions and loss probes included.
_FLAGS = {"syn": "tcp flags & (syn | ack) == syn", "fin": "tcp flags & fin == fin"}


#: The environment of a peer: this checkout's ``sim`` first, whatever the namespace's working directory.
PEER_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


class Unavailable(RuntimeError):
    """The testbed cannot run here (no root, no netns, no nft)."""


def run(*cmd: str, input: str | None = None) -> str:
    res = subprocess.run(cmd, input=input, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {res.stderr.strip() or res.stdout.strip()}")
    return res.stdout


def run_id(pid: int | None = None) -> str | None:
    """``PID.START`` of a process (default: this one), START being its start time in clock ticks after
    boot (/proc/PID/stat field 22). It names one process lifetime, so a PID reused by another process
    gets another id. None when the process does not exist."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: count fields after the last ')'
    return f"{pid}.{stat.rsplit(')', 1)[1].split()[19]}"


def run_alive(rid: str) -> bool:
    """Whether the run ``rid`` is still running. A bare PID (the naming of earlier versions) counts as
    alive while any process has that PID, which may keep a leftover longer but never removes a live
    run's."""
    pid, _, start = rid.partition(".")
    if not start:
        return os.path.exists(f"/proc/{pid}")
    return run_id(int(pid)) == rid


def owner_of(name: str) -> str | None:
    """The run id in a testbed namespace name ``ksim-RUNID-...``, or None if it is not one of ours."""
    parts = name.split("-")
    if len(parts) < 3 or parts[0] != PREFIX:
        return None
    pid, dot, start = parts[1].partition(".")
    if not pid.isdigit() or (dot and not start.isdigit()):
        return None
    return parts[1]


def check_available() -> None:
    """Raise Unavailable with the reason when namespaces or nftables cannot be used."""
    if os.geteuid() != 0:
        raise Unavailable("needs root (network namespaces and nftables)")
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            raise Unavailable(f"'{tool}' is not installed (Debian: apt-get install iproute2 nftables)")
    probe = f"{PREFIX}-{run_id()}-probe"  # named like a testbed, so a sweep removes it if we die here
    try:
        run("ip", "netns", "add", probe)
    except RuntimeError as exc:
        raise Unavailable(f"cannot create a network namespace: {exc}") from None
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)


def sweep_stale() -> int:
    """Remove what runs that are no longer alive left behind (SIGKILL, a crash, a power cut of the
    parent only): their namespaces, and with them the veths and nft tables inside, and any peer of
    theirs still running. Runs that are alive, in this checkout or another, are not touched.
    Returns the number of namespaces removed."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            rid = _peer_owner(proc)
            if rid is not None and not run_alive(rid):
                _kill(int(proc.name))
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed = 0
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        rid = owner_of(name)
        if rid is not None and not run_alive(rid):
            removed += _delete(name)
    return removed


def _peer_owner(proc: Path) -> str | None:
    """The run id of a peer process (``-m sim.testbed.peer --run RUNID``), else None."""
    try:
        args = proc.joinpath("cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if b"sim.testbed.peer" not in args or b"--run" not in args:
        return None
    i = args.index(b"--run") + 1
    return args[i].decode(errors="replace") if i < len(args) else None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _delete(ns: str) -> bool:
    """Kill every process in the namespace, then delete it. True if it existed."""
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        if pid.isdigit():
            _kill(int(pid))
    return subprocess.run(["ip", "netns", "del", ns], capture_output=True).returncode == 0


@dataclass(eq=False)
class Testbed:
    """client/lb/server namespaces for one case; use as a context manager (always cleaned up)."""

    tag: str
    lb_timeout_s: int
    late: str  # "rst" or "drop"
    drop: str = ""  # "", "syn" or "fin": the lb drops every such segment the client sends (a fault)
    client_sysctl: dict[str, int] = field(default_factory=dict)
    server_sysctl: dict[str, int] = field(default_factory=dict)
    owner: str = ""  # run id (see run_id) in every name, so a later sweep can tell whether we are alive

    def __post_init__(self) -> None:
        if not self.owner:
            me = run_id()
            assert me is not None  # this process exists
            self.owner = me
        base = f"{PREFIX}-{self.owner}-{self.tag}"
        self.client, self.lb, self.server = f"{base}-c", f"{base}-l", f"{base}-s"

    def __enter__(self) -> Testbed:
        try:
            self.up()
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def ns(self, name: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", name, *cmd]

    def peer(self, name: str, *args: str) -> list[str]:
        """The command that runs ``sim.testbed.peer ARGS`` in namespace ``name``, tied to this run (its
        environment: ``PEER_ENV``)."""
        return self.ns(name, sys.executable, "-m", "sim.testbed.peer", "--run", self.owner, *args)

    def up(self) -> None:
        """Create the namespaces, veths and nft table; on failure, down() removes what was made."""
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
        inbound = f'iifname "{vc}b"'  # what the client puts on the wire
        fault = f"{inbound} {_FLAGS[self.drop]} drop" if self.drop else ""
        # loading the table loads conntrack in this namespace; then its sysctls exist. The counters
        # sit in prerouting, before conntrack and the fault, so they count what the client sent.
        run(*self.ns(self.lb, "nft", "-f", "-"), input=f"""
table inet ksim {{
  counter syns {{}}
  counter fins {{}}
  chain wire {{
    type filter hook prerouting priority raw - 10; policy accept;
    {inbound} {_FLAGS["syn"]} counter name syns
    {inbound} {_FLAGS["fin"]} counter name fins
  }}
  chain forward {{
    type filter hook forward priority 0; policy accept;
    {fault}
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

    def down(self) -> int:
        """Remove the namespaces (their processes, veths and nft table go with them); returns how
        many existed."""
        return sum(_delete(ns) for ns in (self.client, self.lb, self.server))

    def client_segments(self) -> dict[str, int]:
        """SYNs (without ACK) and FINs the client has put on the wire so far, counted as they arrive
        at the lb namespace: ``{"syn": n, "fin": n}``."""
        doc = json.loads(run(*self.ns(self.lb, "nft", "-j", "list", "counters", "table", "inet", "ksim")))
        counters = {c["counter"]["name"]: c["counter"]["packets"] for c in doc["nftables"] if "counter" in c}
        return {"syn": counters["syns"], "fin": counters["fins"]}

    def keepalive_probes(self, ns: str) -> int:
        """TcpExtTCPKeepAlive of a namespace (per-netns MIB): probes sent there so far."""
        text = run(*self.ns(ns, "cat", "/proc/net/netstat"))
        lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
        names, values = lines[0], lines[1]
        return int(values[names.index("TCPKeepAlive")])

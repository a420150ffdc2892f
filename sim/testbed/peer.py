"""The client and server that run inside the namespaces: plain sockets, one JSON line per event.

    python -m sim.testbed.peer [--run RUNID] server PORT KEEPALIVE USER_TIMEOUT_MS
    python -m sim.testbed.peer [--run RUNID] client HOST PORT KEEPALIVE USER_TIMEOUT_MS GAP_S DURATION_S

    python -m sim.testbed.peer [--run RUNID] connect HOST PORT SYNCNT USER_TIMEOUT_MS
    python -m sim.testbed.peer [--run RUNID] orphan HOST PORT IDLE_S POLL_S MAX_S

``connect`` only connects (TCP_SYNCNT and TCP_USER_TIMEOUT set first, 0 = unset) and reports how
connect() ended and when, from just before the call (the first SYN leaves inside it). ``orphan``
makes one request, reads the response, stays idle IDLE_S seconds, close()s, then polls its own
namespace's /proc/net/tcp every POLL_S seconds (for at most MAX_S) and reports when the orphaned
socket is gone, with the states it was seen in.

KEEPALIVE is ``off`` or ``IDLE,INTVL,CNT`` (0 = the namespace's sysctl). Times are CLOCK_MONOTONIC
seconds, which every namespace shares, so the two sides' events line up.

RUNID is the id of the validate run that started the peer (``netns.run_id``, ``PID.START``); the
peer then dies with it, and a later run finds it by that argument if it is ever left behind.
SIGINT and SIGTERM end a peer quietly: no traceback.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import signal
import socket
import sys
import time

REQ = b"q"
RESP = b"r"


def emit(**event) -> None:
    event["t"] = time.monotonic()
    print(json.dumps(event), flush=True)


def configure(sock: socket.socket, keepalive: str, user_timeout_ms: int) -> None:
    """Set options as an application does before connect()/listen() (accepted sockets inherit)."""
    if keepalive != "off":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in zip((socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT),
                              (int(x) for x in keepalive.split(",")), strict=True):
            if value:
                sock.setsockopt(socket.IPPROTO_TCP, opt, value)
    if user_timeout_ms:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, user_timeout_ms)


def _error(sock: socket.socket) -> str:
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    return errno.errorcode.get(code, str(code)) if code else "EOF"


def _errno_name(exc: OSError) -> str:
    """The symbolic name of a failed call's errno (ECONNRESET, ETIMEDOUT ...), else its number."""
    return errno.errorcode.get(exc.errno, str(exc.errno)) if exc.errno is not None else str(exc)


def wait(sock: socket.socket, until: float, want_data: bool) -> str | None:
    """Poll until ``until``: None when the deadline passes quietly, 'data' when a byte arrives,
    else the socket error (ECONNRESET, ETIMEDOUT, EOF)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return None
        if not poller.poll(left * 1000):
            continue
        try:
            data = sock.recv(1)
        except OSError as exc:
            return _errno_name(exc)
        if not data:
            return _error(sock)
        if want_data:
            return "data"


def client(host: str, port: int, keepalive: str, user_timeout_ms: int, gap_s: float, duration_s: float) -> None:
    sock = socket.socket()
    configure(sock, keepalive, user_timeout_ms)
    sock.connect((host, port))
    t0 = time.monotonic()
    emit(event="connected")
    end = t0 + duration_s
    while time.monotonic() < end:
        try:
            sock.send(REQ)
        except OSError as exc:
            emit(event="error", errno=_errno_name(exc), phase="send")
            return
        emit(event="request")
        got = wait(sock, end, want_data=True)
        if got is None:
            emit(event="end", phase="waiting")
            return
        if got != "data":
            emit(event="error", errno=got, phase="waiting")
            return
        emit(event="response")
        got = wait(sock, min(end, time.monotonic() + gap_s), want_data=False)
        if got is not None:
            emit(event="error", errno=got, phase="idle")
            return
    emit(event="end", phase="idle")


def connect_only(host: str, port: int, syncnt: int, user_timeout_ms: int) -> None:
    """connect() once; ``t0`` in the event is taken just before the call."""
    sock = socket.socket()
    if syncnt:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, syncnt)
    configure(sock, "off", user_timeout_ms)
    t0 = time.monotonic()
    try:
        sock.connect((host, port))
    except OSError as exc:
        emit(event="connect_error", errno=_errno_name(exc), t0=t0)
        return
    emit(event="connected", t0=t0)


#: /proc/net/tcp ``st`` codes (include/net/tcp_states.h).
TCP_STATES = {1: "established", 2: "syn_sent", 3: "syn_recv", 4: "fin_wait1", 5: "fin_wait2", 6: "time_wait",
              7: "close", 8: "close_wait", 9: "last_ack", 10: "listen", 11: "closing"}


def tcp_state(local_port: int) -> str | None:
    """State of this namespace's IPv4 TCP socket bound to ``local_port``, None when there is none."""
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                return TCP_STATES.get(int(fields[3], 16), fields[3])
    return None


def orphan(host: str, port: int, idle_s: float, poll_s: float, max_s: float) -> None:
    """One request and response, ``idle_s`` of silence, then close(): the socket lives on as an orphan until its FIN is
    acknowledged or it gives up; ``gone`` is the first poll that no longer finds it (resolution
    ``poll_s``)."""
    sock = socket.socket()
    sock.connect((host, port))
    emit(event="connected")
    sock.send(REQ)
    if wait(sock, time.monotonic() + 10, want_data=True) != "data":
        emit(event="error", errno="no response", phase="waiting")
        return
    emit(event="response")
    got = wait(sock, time.monotonic() + idle_s, want_data=False)
    if got is not None:
        emit(event="error", errno=got, phase="idle")
        return
    local_port = sock.getsockname()[1]
    t_close = time.monotonic()
    sock.close()  # the response is read: a plain FIN, not a RST for unread data (R50)
    seen: list[str] = []
    last_seen = t_close
    while time.monotonic() < t_close + max_s:
        state = tcp_state(local_port)
        now = time.monotonic()
        if state is None:
            emit(event="gone", t_close=t_close, last_seen=last_seen, states=seen)
            return
        last_seen = now
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(poll_s)
    emit(event="end", t_close=t_close, states=seen)


def server(port: int, keepalive: str, user_timeout_ms: int) -> None:
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    configure(lst, keepalive, user_timeout_ms)
    lst.bind(("0.0.0.0", port))
    lst.listen(4)
    emit(event="listening")
    conn, _ = lst.accept()
    emit(event="accepted")
    while True:
        got = wait(conn, time.monotonic() + 3600, want_data=True)
        if got == "data":
            try:
                conn.send(RESP)
            except OSError as exc:
                emit(event="error", errno=_errno_name(exc), phase="send")
                return
            continue
        emit(event="error", errno=got or "EOF", phase="idle")
        return


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(owner_pid: int) -> bool:
    """Ask the kernel for SIGKILL when our parent goes, even by SIGKILL, and say whether the parent
    is still ``owner_pid``. The request covers only a parent that dies after it is made; one that
    died between our fork and now has already left us to a reaper, which getppid() shows.

    Linux sends the signal when the parent *thread* that forked us exits: validate starts peers from
    worker threads that wait for them, so that thread outlives its peers unless the process dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    return os.getppid() == owner_pid


def prefer_cpu() -> None:
    """Run at real-time priority (else nice -10), so that the waits this process times (the request
    gap, the wake-up on an error, the end of the run) are not lengthened by other load on the
    machine: with every core busy a plain process can wake tens of milliseconds late, which eats the
    50 ms allowance in the tolerance; a SCHED_FIFO one wakes within a fraction of a millisecond. A
    peer sleeps in poll() almost all the time, so it takes no CPU from anyone."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except OSError:  # no CAP_SYS_NICE, or no real-time budget in this cgroup
        try:
            os.setpriority(os.PRIO_PROCESS, 0, -10)
        except OSError:
            pass


def main(argv: list[str]) -> int:
    # Killed by these signals with the default action: silent, unlike a KeyboardInterrupt traceback
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if argv[:1] == ["--run"]:
        if not die_with_parent(int(argv[1].split(".")[0])):
            return 0  # the run is gone already: nobody to serve, nobody to tell
        argv = argv[2:]
    prefer_cpu()
    role = argv[0]
    if role == "server":
        server(int(argv[1]), argv[2], int(argv[3]))
    elif role == "connect":
        connect_only(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    elif role == "orphan":
        orphan(argv[1], int(argv[2]), float(argv[3]), float(argv[4]), float(argv[5]))
    else:
        client(argv[1], int(argv[2]), argv[3], int(argv[4]), float(argv[5]), float(argv[6]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

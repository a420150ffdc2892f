"""The client and server that run inside the namespaces: plain sockets, one JSON line per event.

    python -m sim.testbed.peer server PORT KEEPALIVE USER_TIMEOUT_MS
    python -m sim.testbed.peer client HOST PORT KEEPALIVE USER_TIMEOUT_MS GAP_S DURATION_S

KEEPALIVE is ``off`` or ``IDLE,INTVL,CNT`` (0 = the namespace's sysctl). Times are CLOCK_MONOTONIC
seconds, which every namespace shares, so the two sides' events line up.
"""

from __future__ import annotations

import errno
import json
import select
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
            return errno.errorcode.get(exc.errno, str(exc.errno))
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
            emit(event="error", errno=errno.errorcode.get(exc.errno, str(exc.errno)), phase="send")
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
                emit(event="error", errno=errno.errorcode.get(exc.errno, str(exc.errno)), phase="send")
                return
            continue
        emit(event="error", errno=got or "EOF", phase="idle")
        return


def main(argv: list[str]) -> int:
    role = argv[0]
    if role == "server":
        server(int(argv[1]), argv[2], int(argv[3]))
    else:
        client(argv[1], int(argv[2]), argv[3], int(argv[4]), float(argv[5]), float(argv[6]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

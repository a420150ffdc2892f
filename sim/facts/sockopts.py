"""Socket option numbers, from the Linux uapi headers (asm-generic/socket.h, linux/tcp.h).

Used wherever numbers appear: EnvoyFilter ``socket_options`` decoding, error messages, reports.
Source: include/uapi/asm-generic/socket.h and include/uapi/linux/tcp.h (v5.4, as quoted in
docs/reference/seed-istio-gateway-keepalive.txt).
"""

from __future__ import annotations

SOL_SOCKET = 1
SOL_TCP = 6
LEVELS = {0: "SOL_IP", 1: "SOL_SOCKET", 6: "SOL_TCP", 17: "SOL_UDP", 41: "SOL_IPV6"}

SOCKET_OPTIONS = {
    1: "SO_DEBUG", 2: "SO_REUSEADDR", 3: "SO_TYPE", 4: "SO_ERROR", 5: "SO_DONTROUTE",
    6: "SO_BROADCAST", 7: "SO_SNDBUF", 8: "SO_RCVBUF", 9: "SO_KEEPALIVE", 10: "SO_OOBINLINE",
    11: "SO_NO_CHECK", 12: "SO_PRIORITY", 13: "SO_LINGER", 14: "SO_BSDCOMPAT", 15: "SO_REUSEPORT",
    16: "SO_PASSCRED", 17: "SO_PEERCRED", 18: "SO_RCVLOWAT", 19: "SO_SNDLOWAT", 20: "SO_RCVTIMEO_OLD",
    21: "SO_SNDTIMEO_OLD", 22: "SO_SECURITY_AUTHENTICATION", 23: "SO_SECURITY_ENCRYPTION_TRANSPORT",
    24: "SO_SECURITY_ENCRYPTION_NETWORK", 25: "SO_BINDTODEVICE", 26: "SO_ATTACH_FILTER",
    27: "SO_DETACH_FILTER", 28: "SO_PEERNAME", 29: "SO_TIMESTAMP_OLD", 30: "SO_ACCEPTCONN",
    31: "SO_PEERSEC", 32: "SO_SNDBUFFORCE", 33: "SO_RCVBUFFORCE",
}

TCP_OPTIONS = {
    1: "TCP_NODELAY", 2: "TCP_MAXSEG", 3: "TCP_CORK", 4: "TCP_KEEPIDLE", 5: "TCP_KEEPINTVL",
    6: "TCP_KEEPCNT", 7: "TCP_SYNCNT", 8: "TCP_LINGER2", 9: "TCP_DEFER_ACCEPT", 10: "TCP_WINDOW_CLAMP",
    11: "TCP_INFO", 12: "TCP_QUICKACK", 13: "TCP_CONGESTION", 14: "TCP_MD5SIG",
    15: "TCP_COOKIE_TRANSACTIONS", 16: "TCP_THIN_LINEAR_TIMEOUTS", 17: "TCP_THIN_DUPACK",
    18: "TCP_USER_TIMEOUT", 19: "TCP_REPAIR", 20: "TCP_REPAIR_QUEUE", 21: "TCP_QUEUE_SEQ",
    22: "TCP_REPAIR_OPTIONS", 23: "TCP_FASTOPEN", 24: "TCP_TIMESTAMP", 25: "TCP_NOTSENT_LOWAT",
    26: "TCP_CC_INFO", 27: "TCP_SAVE_SYN", 28: "TCP_SAVED_SYN", 29: "TCP_REPAIR_WINDOW",
    30: "TCP_FASTOPEN_CONNECT", 31: "TCP_ULP", 32: "TCP_MD5SIG_EXT", 33: "TCP_FASTOPEN_KEY",
    34: "TCP_FASTOPEN_NO_COOKIE", 35: "TCP_ZEROCOPY_RECEIVE", 36: "TCP_INQ",
}

#: The options the simulator models; anything else in ``socket_options`` is a config error.
MODELLED = {
    (SOL_SOCKET, 9): "SO_KEEPALIVE",
    (SOL_TCP, 4): "TCP_KEEPIDLE",
    (SOL_TCP, 5): "TCP_KEEPINTVL",
    (SOL_TCP, 6): "TCP_KEEPCNT",
    (SOL_TCP, 18): "TCP_USER_TIMEOUT",
}


def option_name(level: int, name: int) -> str:
    """``SOL_TCP/TCP_KEEPIDLE`` style name for a (level, name) pair, numbers if unknown."""
    table = {SOL_SOCKET: SOCKET_OPTIONS, SOL_TCP: TCP_OPTIONS}.get(level, {})
    lvl = LEVELS.get(level, f"level {level}")
    return f"{lvl}/{table.get(name, f'option {name}')}"

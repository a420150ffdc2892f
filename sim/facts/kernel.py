"""Linux TCP constants, limits, netns defaults and setsockopt checks (docs/reference/kernel-keepalive.md).

``Final`` constants: the compiled core inlines them (a module global is a dict lookup)."""

from __future__ import annotations

from typing import Final

#: Kernel constants (include/net/tcp.h), in seconds unless noted.
TCP_RTO_MIN_S: Final = 0.2
TCP_RTO_MAX_S: Final = 120.0
#: TCP_TIMEOUT_INIT: the first SYN's (and SYN-ACK's) retransmission timeout (kernel-lifecycle.md R41, R45).
TCP_TIMEOUT_INIT_S: Final = 1.0
#: TCP_TIMEWAIT_LEN: how long the side that closes first stays in TIME_WAIT (R49).
TCP_TIMEWAIT_LEN_S: Final = 60.0
#: MAX_TCP_SYNCNT: the largest TCP_SYNCNT and tcp_syn_retries the kernel accepts.
MAX_TCP_SYNCNT: Final = 127
MAX_TCP_KEEPIDLE: Final = 32767
MAX_TCP_KEEPINTVL: Final = 32767
MAX_TCP_KEEPCNT: Final = 127
#: Dup-ACK answers to out-of-window segments are rate limited per socket (R22).
TCP_INVALID_RATELIMIT_S: Final = 0.5
#: TCP_USER_TIMEOUT is an unsigned int of milliseconds, capped at INT_MAX (R3).
USER_TIMEOUT_MAX_MS: Final = 2**31 - 1

#: Defaults of a fresh network namespace (R2).
DEFAULT_SYSCTL: Final = {
    "net.ipv4.tcp_keepalive_time": 7200,
    "net.ipv4.tcp_keepalive_intvl": 75,
    "net.ipv4.tcp_keepalive_probes": 9,
    "net.ipv4.tcp_retries1": 3,
    "net.ipv4.tcp_retries2": 15,
    # kernel-lifecycle.md R42, R43, R45, R47, R48
    "net.ipv4.tcp_syn_retries": 6,
    "net.ipv4.tcp_synack_retries": 5,
    "net.ipv4.tcp_syn_linear_timeouts": 4,
    "net.ipv4.tcp_orphan_retries": 0,
    "net.ipv4.tcp_fin_timeout": 60,
}
#: Sysctls the model reads, with the ranges a 6.18 kernel accepts (kernel-keepalive.md §1.2).
SYSCTL_RANGES: Final = {
    "net.ipv4.tcp_keepalive_time": (1, 8589934),
    "net.ipv4.tcp_keepalive_intvl": (1, 8589934),
    "net.ipv4.tcp_keepalive_probes": (0, 255),
    "net.ipv4.tcp_retries1": (0, 255),
    "net.ipv4.tcp_retries2": (0, 255),
    "net.ipv4.tcp_syn_retries": (1, MAX_TCP_SYNCNT),
    "net.ipv4.tcp_synack_retries": (0, 255),
    "net.ipv4.tcp_syn_linear_timeouts": (0, MAX_TCP_SYNCNT),
    "net.ipv4.tcp_orphan_retries": (0, 255),
    "net.ipv4.tcp_fin_timeout": (1, 8589934),
}


class SockOptError(ValueError):
    """setsockopt would return EINVAL (R3)."""

    def __init__(self, option: str, value: object, allowed: str) -> None:
        super().__init__(f"{option}={value} is rejected by the kernel with EINVAL (allowed: {allowed})")
        self.option = option
        self.value = value
        self.allowed = allowed


def check_keepalive_option(option: str, value: int) -> None:
    """Raise SockOptError where setsockopt would fail with EINVAL (R3)."""
    limits = {"TCP_KEEPIDLE": MAX_TCP_KEEPIDLE, "TCP_KEEPINTVL": MAX_TCP_KEEPINTVL, "TCP_KEEPCNT": MAX_TCP_KEEPCNT}
    if option == "TCP_USER_TIMEOUT":
        if value < 0:
            raise SockOptError(option, value, "0 (off) or more milliseconds")
        return
    hi = limits[option]
    if not 1 <= value <= hi:
        raise SockOptError(option, value, f"1..{hi}")


def retries_timeout_s(retries: int, rto_base_s: float = TCP_RTO_MIN_S) -> float:
    """T(N): tcp_model_timeout(N, rto_base) in seconds (§7.1, R32); rto_base is TCP_RTO_MIN for an
    established socket or an orphan (R47), TCP_TIMEOUT_INIT in SYN_SENT (kernel-lifecycle.md R43)."""
    thresh = round(TCP_RTO_MAX_S / rto_base_s).bit_length() - 1  # ilog2(TCP_RTO_MAX / rto_base): 9, or 6
    if retries <= thresh:
        return rto_base_s * ((2 << retries) - 1)
    return rto_base_s * ((2 << thresh) - 1) + (retries - thresh) * TCP_RTO_MAX_S


def orphan_retries(sysctl_value: int, rto_s: float) -> int:
    """tcp_orphan_retries(): the sysctl, where 0 means 8 while the RTO is below TCP_RTO_MAX (R47)."""
    if sysctl_value == 0 and rto_s < TCP_RTO_MAX_S:
        return 8
    return sysctl_value

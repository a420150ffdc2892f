"""Envoy ``SocketOption`` and ``TcpKeepalive`` decoding, by Envoy's own protobuf types.

Each option (and each TcpKeepalive block) is read with ``google.protobuf.json_format.ParseDict``
into ``envoy.config.core.v3.SocketOption`` / ``TcpKeepalive`` from the ``xds-protos`` package, so
that what is accepted is exactly what Envoy and Istio accept: snake_case or camelCase keys
(``int_value`` / ``intValue``), numbers or numeric strings (int64 fields print as ``"300"`` in a
config_dump), enum names or numbers (``state: 0`` is ``STATE_PREBIND``), ``{"value": N}`` wrappers
spelt out. Each field is parsed on its own first, so an error names its key and YAML line.
"""

from __future__ import annotations

from typing import Any

from envoy.config.core.v3 import address_pb2, socket_option_pb2
from google.protobuf.json_format import ParseDict, ParseError
from google.protobuf.message import Message

from sim.config.yamlio import dotted
from sim.errors import ConfigError
from sim.facts.kernel import SockOptError, check_keepalive_option
from sim.integrations.model import Lines, SockOpt, line_of

_STATE_ENUM = socket_option_pb2.SocketOption.DESCRIPTOR.enum_types_by_name["SocketState"]
#: 0, 1, 2 -> STATE_PREBIND, STATE_BOUND, STATE_LISTENING (Envoy validates `defined_only`)
STATES = {v.number: v.name for v in _STATE_ENUM.values}
_KERNEL_CHECKED = {(6, 4): "TCP_KEEPIDLE", (6, 5): "TCP_KEEPINTVL", (6, 6): "TCP_KEEPCNT", (6, 18): "TCP_USER_TIMEOUT"}


def _unwrap(value: Any) -> Any:
    """``{value: 300}`` (a wrapper spelt out, as some YAML writers do) -> 300."""
    if isinstance(value, dict) and set(value) == {"value"}:
        return value["value"]
    return value


def parse_fields(raw: dict, msg: Message, file: str, lines: Lines | None, base: tuple, allowed: str) -> Message:
    """ParseDict ``raw`` into ``msg``, field by field first so that an error names the key and line."""
    fields = msg.DESCRIPTOR.fields_by_name
    json_names = {f.json_name: f.name for f in msg.DESCRIPTOR.fields}
    for key, value in raw.items():
        where = base + (key,)
        if key not in fields and key not in json_names:
            raise ConfigError(f"unknown field {key!r} of {msg.DESCRIPTOR.name}", file=file, line=line_of(lines, where),
                              key=dotted(where), allowed=allowed)
        try:
            ParseDict({key: _unwrap(value)}, type(msg)())
        except ParseError as exc:
            problem = str(exc).split(" at ")[0].rstrip(".")
            raise ConfigError(problem, file=file, line=line_of(lines, where), key=dotted(where),
                              allowed=allowed) from None
    try:
        ParseDict({k: _unwrap(v) for k, v in raw.items()}, msg)
    except ParseError as exc:  # e.g. both int_value and buf_value (one oneof)
        raise ConfigError(str(exc).split(" at ")[0].rstrip("."), file=file, line=line_of(lines, base),
                          key=dotted(base), allowed=allowed) from None
    return msg


def parse_socket_options(raw: Any, file: str, lines: Lines | None, base: tuple) -> list[SockOpt]:
    """Envoy ``socket_options`` (any JSON spelling) -> SockOpts. Any option is accepted and named;
    TCP_KEEP*/TCP_USER_TIMEOUT values the kernel would reject with EINVAL are errors (R3)."""
    allowed = "description, level, name, int_value (intValue) or buf_value, state, type"
    if not isinstance(raw, list):
        raise ConfigError("socket_options must be a list of {level, name, int_value}", file=file,
                          line=line_of(lines, base), key=dotted(base))
    out = []
    for i, opt in enumerate(raw):
        where = base + (i,)
        line = line_of(lines, where)
        if not isinstance(opt, dict):
            raise ConfigError("each socket option is a mapping {level, name, int_value, state}", file=file,
                              line=line, key=dotted(where), allowed=allowed)
        msg = parse_fields(opt, socket_option_pb2.SocketOption(), file, lines, where, allowed)
        for k in ("level", "name"):
            if k not in opt:
                raise ConfigError(f"missing {k}", file=file, line=line, key=dotted(where), allowed=allowed)
        state_key = "state" if "state" in opt else None
        if msg.state not in STATES:  # proto3 enums are open; Envoy's validation is not
            raise ConfigError(f"{opt.get(state_key)!r} is not a socket state", file=file,
                              line=line_of(lines, where + ("state",)), key=dotted(where + ("state",)),
                              allowed=", ".join(f"{n} or {s}" for n, s in STATES.items()))
        # proto3 omits a zero int_value in config_dump output: no value field at all means 0
        value = None if msg.WhichOneof("value") == "buf_value" else msg.int_value
        so = SockOpt(msg.level, msg.name, value, STATES[msg.state] if state_key else None, line)
        known = _KERNEL_CHECKED.get((so.level, so.name))
        if known and value is not None:
            vkey = next((k for k in ("int_value", "intValue") if k in opt), "int_value")
            try:
                check_keepalive_option(known, value)
            except SockOptError as exc:
                raise ConfigError(f"{known} {value} is rejected by the kernel with EINVAL", file=file,
                                  line=line_of(lines, where + (vkey,)), key=dotted(where + (vkey,)),
                                  allowed=exc.allowed) from None
        out.append(so)
    return out


_ENVOY_KA = {"keepalive_time": "idle", "keepalive_interval": "interval", "keepalive_probes": "count"}
_KA_OPTION = {"idle": "TCP_KEEPIDLE", "interval": "TCP_KEEPINTVL", "count": "TCP_KEEPCNT"}


def parse_envoy_tcp_keepalive(raw: Any, file: str, lines: Lines | None,
                              base: tuple) -> tuple[dict[str, int | None], dict[str, str], list[str]]:
    """Envoy ``TcpKeepalive`` -> ({idle, interval, count}, the key each came from, the keys set to 0).
    None = not given (the kernel then uses the netns sysctl). A 0 is what Istio makes of a sub-second
    duration: Envoy passes it to setsockopt, which fails (R3); the caller reports the hop as broken.
    Other values setsockopt would reject are errors."""
    allowed = "keepalive_time, keepalive_interval, keepalive_probes (or keepaliveTime, ...), whole seconds"
    if raw is None:
        raw = {}  # `tcp_keepalive: {}`: SO_KEEPALIVE on, all from sysctls
    if not isinstance(raw, dict):
        raise ConfigError(f"{raw!r} should be a mapping", file=file, line=line_of(lines, base), key=dotted(base),
                          allowed=allowed)
    msg = parse_fields(raw, address_pb2.TcpKeepalive(), file, lines, base, allowed)
    out: dict[str, int | None] = {"idle": None, "interval": None, "count": None}
    keys: dict[str, str] = {}
    zeros: list[str] = []
    for fname, canon in _ENVOY_KA.items():
        if not msg.HasField(fname):
            continue
        value = getattr(msg, fname).value
        key = next(k for k in raw if k in (fname, address_pb2.TcpKeepalive.DESCRIPTOR.fields_by_name[fname].json_name))
        if value == 0:
            zeros.append(key)
            continue
        try:
            check_keepalive_option(_KA_OPTION[canon], value)
        except SockOptError as exc:
            raise ConfigError(f"{exc.option} {value} is rejected by the kernel with EINVAL", file=file,
                              line=line_of(lines, base + (key,)), key=dotted(base + (key,)),
                              allowed=exc.allowed) from None
        out[canon] = value
        keys[canon] = key
    return out, keys, zeros


def zero_keepalive_effect(what: str) -> str:
    """Why a TcpKeepalive value of 0 breaks the hop: ``what`` names the value (and where it came from)."""
    return (f"{what} is 0 s: Envoy passes it to setsockopt, which rejects 0 with EINVAL (R3), and an upstream "
            "socket option that fails before connect() makes Envoy close the connection at once "
            "(ClientConnectionImpl, STATE_PREBIND): every connection of this cluster fails")

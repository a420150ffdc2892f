"""Envoy's upstream connection pools and HTTP/2 connection keepalive (docs/config.md#envoy-upstream-pools).

``envoy.concurrency`` workers each keep a pool per upstream host; ``envoy.upstream.protocol`` says
whether a pool connection carries one request at a time (http1) or multiplexes up to
``max_concurrent_streams`` streams (http2). ``http2_keepalive`` is Envoy's
``http2_protocol_options.connection_keepalive`` (api/envoy/config/core/v3/protocol.proto,
KeepaliveSettings): a PING every ``interval``, the connection aborted when no PING ACK came within
``timeout``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field

from sim.config.fields import Duration, Strict

#: Envoy's own default and bound of max_concurrent_streams (protocol.proto: 1 .. 2^31 - 1).
MAX_CONCURRENT_STREAMS = 2**31 - 1
#: Worker threads: Envoy's --concurrency (default: the hardware threads). Every worker has a pool of
#: its own; beyond 1024 the model would only hold empty pools.
MAX_CONCURRENCY = 1024
#: Envoy instances (gateway pods) behind the client's LB, each with ``concurrency`` workers. An NLB
#: target group takes up to 1,000 targets by IP (AWS "Quotas for your Network Load Balancers"); ten
#: times that bounds the hosts the model draws.
MAX_REPLICAS = 10_000

#: protocol.proto's KeepaliveSettings: interval and timeout are required, each at least 1 ms.
KeepaliveDuration = Annotated[Duration, Field(ge=0.001)]

UpstreamProtocol = Literal["http1", "http2"]


class Http2KeepaliveCfg(Strict):
    """``connection_keepalive``: a PING every ``interval``; no PING ACK within ``timeout``: abort."""

    interval: KeepaliveDuration
    timeout: KeepaliveDuration


#: ``envoy.upstream.http2_keepalive`` / ``envoy.listener.http2_keepalive``: null = off
Http2Keepalive = Optional[Http2KeepaliveCfg]
Concurrency = Annotated[int, Field(ge=1, le=MAX_CONCURRENCY)]
Replicas = Annotated[int, Field(ge=1, le=MAX_REPLICAS)]
ConcurrentStreams = Annotated[int, Field(ge=1, le=MAX_CONCURRENT_STREAMS)]


def check_http2_keepalive(protocol: str, keepalive: Http2KeepaliveCfg | None) -> None:
    """``connection_keepalive`` is an HTTP/2 protocol option: it needs HTTP/2 pool connections."""
    if keepalive is not None and protocol != "http2":
        raise ValueError("http2_keepalive needs protocol: http2 (allowed: http2_keepalive with protocol: http2, "
                         "or http2_keepalive: null)")

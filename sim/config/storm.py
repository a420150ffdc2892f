"""Storms with a cause (``storm``) and the client's reconnect policy (``client.reconnect``),
docs/config.md#storm and docs/model.md "Storms and reconnect policies"."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import model_validator

from sim.config.fields import Duration, Strict

#: AWS's backoff variants (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015)
JITTERS = ("none", "full", "equal", "decorrelated")


class StormCfg(Strict):
    """One storm: at ``at`` (seconds of simulated time) the gateway drains (``rollout``, spread over
    ``window``), the LB deregisters the target (``deregister``: its flows end after the
    deregistration delay) or a middlebox forgets every flow at once (``drop_all``)."""

    at: Duration
    kind: Literal["rollout", "deregister", "drop_all"]
    #: rollout: each downstream connection closes at a uniform time in [at, at + window]
    window: Duration = 0.0
    #: deregister: seconds from ``at`` until the flows end; null: the profile's
    #: ``deregistration_delay`` (aws-nlb-tcp: 300 s)
    deregistration_delay: Optional[Duration] = None
    #: deregister, drop_all: the middlebox (a profile name of ``lb`` or ``upstream.lb``); null: the
    #: first device of ``lb`` (else of ``upstream.lb``)
    device: Optional[str] = None

    @model_validator(mode="after")
    def _keys_of_kind(self) -> StormCfg:
        if self.window > 0 and self.kind != "rollout":
            raise ValueError(f"window spreads a rollout only; a {self.kind} happens at once "
                             "(allowed: window with kind rollout)")
        if self.deregistration_delay is not None and self.kind != "deregister":
            raise ValueError("deregistration_delay belongs to kind deregister (allowed: deregistration_delay with "
                             "kind deregister)")
        if self.device is not None and self.kind == "rollout":
            raise ValueError("a rollout drains the gateway (Envoy), not a middlebox (allowed: device with kind "
                             "deregister or drop_all)")
        return self


class ReconnectCfg(Strict):
    """When a client slot reconnects: ``next_request`` (the default: a connection that dies is
    replaced at once, a failed connect waits for the slot's next request), ``immediate`` (a failed
    connect is retried at once too) or ``backoff`` (after a death or a failed connect, wait
    min(cap, base x 2^n) with ``jitter``, n = failed connects since the last one that succeeded)."""

    policy: Literal["next_request", "immediate", "backoff"] = "next_request"
    base: Optional[Duration] = None
    cap: Optional[Duration] = None
    jitter: Optional[Literal["none", "full", "equal", "decorrelated"]] = None

    @model_validator(mode="after")
    def _backoff_keys(self) -> ReconnectCfg:
        given = [k for k in ("base", "cap", "jitter") if getattr(self, k) is not None]
        if self.policy != "backoff":
            if given:
                raise ValueError(f"{', '.join(given)} without policy backoff (allowed: base, cap and jitter with "
                                 "policy: backoff)")
            return self
        if self.base is None or self.base <= 0:
            raise ValueError("backoff needs base > 0, the first delay (allowed: a duration > 0, e.g. base: 1s)")
        if self.cap is not None and self.cap < self.base:
            raise ValueError(f"cap {self.cap:g} s is below base {self.base:g} s (allowed: cap >= base)")
        return self

    @property
    def base_s(self) -> float:
        return self.base or 0.0

    @property
    def cap_s(self) -> float:
        """The longest delay: ``cap``, by default 20 x base (seconds)."""
        return self.cap if self.cap is not None else 20.0 * self.base_s

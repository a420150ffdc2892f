"""The client slots of a world, each of its traffic class (sim.spec.classes, docs/config.md#traffic-classes).

A class's fleet-wide pieces are made once (``SlotClass``: its client host, socket options, request
timeout queue, samplers of fixed distributions, traffic process); a slot holds its class and reads
them there, so a slot costs no more than without classes. Every random stream stays the slot's own
(keyed by its index), whatever its class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from sim.model.app import ClientSlot, Sampler, Server
from sim.model.host import Host, SockOpts
from sim.model.process_slot import ProcessSlot
from sim.model.timeouts import FifoTimeouts
from sim.model.user_process import UserProcesses, load_process
from sim.spec import ClientSpec, HostSpec, TrafficSpec, WorldSpec
from sim.spec.classes import DEFAULT_CLASS, slot_class

if TYPE_CHECKING:  # for types only: scenario imports this module
    from sim.model.scenario import World

#: the spawn keys of a slot's gap and service-time streams under the run's seed (the wheel's is 3:
#: sim.model.scenario)
STREAM_GAPS: Final = 1
STREAM_SERVICE: Final = 2


class SlotClass:
    """One traffic class as the slots of a world share it."""

    __slots__ = ("index", "name", "cfg", "traffic", "host", "opts", "request_timeouts", "requests_per_conn",
                 "fixed_gaps", "fixed_server", "procs",
                 "failed_per_s")

    def __init__(self, index: int, name: str, cfg: ClientSpec, traffic: TrafficSpec, host: Host, opts: SockOpts,
                 request_timeouts: FifoTimeouts | None) -> None:
        self.index = index
        self.name = name
        self.cfg = cfg
        self.traffic = traffic
        #: the client host (network namespace) its slots connect from, and their socket options
        self.host = host
        self.opts = opts
        #: the fleet's queue of this class's fixed-length request timeouts (None: off)
        self.request_timeouts = request_timeouts
        #: traffic.requests_per_connection (0: unlimited), read at every answer
        self.requests_per_conn = traffic.requests_per_connection
        self.fixed_gaps: Sampler | None = None
        self.fixed_server: Server | None = None
        self.procs: UserProcesses | None = None
        #: its slots' failed requests per simulated second, sparse (the burst of a reconnect storm)
        self.failed_per_s: dict[int, int] = {}


def slot_rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def make_classes(world: World, spec: WorldSpec, host: Callable[[HostSpec], Host], opts: Callable[[Any], SockOpts],
                 first: SlotClass) -> list[SlotClass]:
    """The world's classes: ``first`` (made from ``spec.traffic`` and ``spec.client`` as without
    classes), then one per further class of ``spec.classes``. Classes with the same client kernel
    share one host (a further one draws its wheel phase after every other host's), and classes with
    the same request timeout share one queue."""
    out = [first]
    hosts = {first.cfg.host: first.host}
    queues = {first.cfg.request_timeout_s: first.request_timeouts}
    for k, cs in enumerate(spec.classes[1:], start=1):
        c = cs.client
        if c.host not in hosts:
            hosts[c.host] = host(c.host)
        if c.request_timeout_s not in queues:
            queues[c.request_timeout_s] = FifoTimeouts(world.sched, c.request_timeout_s, "outstanding",
                                                       ClientSlot._request_timed_out)
        out.append(SlotClass(k, cs.name, c, cs.traffic, hosts[c.host], opts(c.socket), queues[c.request_timeout_s]))
    if spec.classes:
        first.name = spec.classes[0].name
    return out


def first_class(world: World, spec: WorldSpec, host: Host, opts: SockOpts) -> SlotClass:
    """The first (or only) class, from ``spec.traffic`` and ``spec.client``."""
    c = spec.client
    timeouts = (FifoTimeouts(world.sched, c.request_timeout_s, "outstanding", ClientSlot._request_timed_out)
                if c.request_timeout_s > 0 else None)
    return SlotClass(0, DEFAULT_CLASS, c, spec.traffic, host, opts, timeouts)


def build_slots(world: World, classes: list[SlotClass], seed: int, slots: Iterable[int] | None) -> list[ClientSlot]:
    """Every simulated slot, each of its class, its first connection scheduled: slot i opens at
    i × its class's ramp / connections."""
    spec = world.spec
    server = spec.server
    n = spec.connections
    counts = spec.class_counts
    # A fixed distribution has no state, so its sampler (and a server that only uses that) is
    # shared by the class instead of costing memory per connection.
    for k in classes:
        gp, sv = k.traffic.gap, k.traffic.service
        k.fixed_gaps = Sampler(gp.kind, gp.a, gp.b, None) if gp.kind == "fixed" else None
        k.fixed_server = (Server(world, Sampler(sv.kind, sv.a, sv.b, None), server.idle_timeout_s, server.grpc,
                                 server.close_on_fin) if sv.kind == "fixed" else None)
    # A traffic process (traffic.process) sends the requests instead of the gaps: its slots run it
    # on one SimPy environment for the world, and get the gaps' random stream as their own.
    env = None
    for k in classes:
        t = k.traffic
        if t.process is not None:
            k.procs = UserProcesses(world.sched, t.process, load_process(t.process, t.process_path), dict(t.params),
                                    env)
            env = k.procs.env
            if world.sched.procs is None:
                world.sched.procs = k.procs
                for mb in world.ds_mbs + world.us_mbs:
                    mb.message_sizes = True
    out: list[ClientSlot] = []
    for i in (range(n) if slots is None else slots):
        k = classes[slot_class(i, counts)] if len(classes) > 1 else classes[0]
        sv, gp = k.traffic.service, k.traffic.gap
        srv = k.fixed_server or Server(world, Sampler(sv.kind, sv.a, sv.b, slot_rng(seed, STREAM_SERVICE, i)),
                                       server.idle_timeout_s, server.grpc, server.close_on_fin)
        if k.procs is not None:
            slot: ClientSlot = ProcessSlot(world, i, srv, k, k.procs)
            k.procs.start(slot, i * k.traffic.ramp_s / n, slot_rng(seed, STREAM_GAPS, i))
        else:
            gaps = k.fixed_gaps or Sampler(gp.kind, gp.a, gp.b, slot_rng(seed, STREAM_GAPS, i))
            slot = ClientSlot(world, i, gaps, srv, k)
            world.sched.call_at(i * k.traffic.ramp_s / n, slot.open)
        out.append(slot)
    if env is not None:
        world.sched.watch_env()
    return out

"""The SimPy world: kernel timers, middleboxes, proxies, applications, wire-up."""

from sim.model import native

native.select()

"""keepalive-sim: TCP connections through idle-timeout load balancers, Linux-faithful timers."""

__version__ = "0.1.0"

# Before anything imports the simulation core: choose its compiled or plain-Python build (sim/native.py).
from sim import native as _native  # noqa: E402

_native.select()

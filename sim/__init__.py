"""keepalive-sim: TCP connections through idle-timeout load balancers, Linux-faithful timers."""

__version__ = "0.1.0"

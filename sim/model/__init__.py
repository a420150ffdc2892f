"""The simulated world: kernel timers, middleboxes, proxies, applications, wire-up (built from sim.spec)."""

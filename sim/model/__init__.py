"""The SimPy world: kernel timers, middleboxes, proxies, applications, wire-up."""

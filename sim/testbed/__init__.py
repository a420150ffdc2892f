"""Real-kernel validation: the same scenarios on Linux, in network namespaces, with conntrack as
the idle-timeout middlebox (``python -m sim validate --kernel``)."""

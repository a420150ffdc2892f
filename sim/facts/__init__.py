"""Facts shared by the config, the model and the reports: Linux's option numbers, limits and
defaults (kernel-keepalive.md), timer-wheel arithmetic, and the names of outcomes, failure reasons
and record columns. A leaf: it imports nothing else of ``sim``."""

"""A run's figures from its records: the summary (DESIGN §3) and the capacity figures.

Pure functions over what a run produced (its columns, counters and series); below execution, so
that execution can summarise what it runs without importing the report."""

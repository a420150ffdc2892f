"""The results folder (DESIGN §4, docs/outputs.md): how it is written and read back.

Execution writes a sweep's parts and merged tables through it, the report reads them (and writes
summary.csv and sweep.json) through it; neither knows the other."""

"""Execution: everything between a validated scenario and stored results, above the model.

``run_one(scenario, seed) -> Records`` is the pure core (DESIGN §5): it resolves a validated
scenario and simulates one replication. Nothing here knows about the CLI.
"""

from sim.execution.simulate import run_one

__all__ = ["run_one"]

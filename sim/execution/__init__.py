"""Execution: everything between a validated scenario and stored results, above the model.

``run_one(scenario, seed) -> Records`` is the pure core (DESIGN §5): it resolves a validated
scenario and simulates one replication; it is the only way in to the model from above. Around it:
a scenario's replications and fleet splits (runner.py), the grid (grid.py), seeds (seeds.py),
executors (executors.py), the cost estimate (cost.py), progress (progress.py), one sweep task
(tasks.py), the sweep driver (sweep.py) and the closed-form screening of ``sweep --method
analytic`` (analytic.py). Nothing here knows about the CLI or the report.
"""

from sim.execution.simulate import run_one

__all__ = ["run_one"]

"""Seeds: one SeedSequence per root seed, one child per replication (common random numbers)."""

from __future__ import annotations

import numpy as np


def replication_seed(root_seed: int, replication: int) -> int:
    """The seed of replication ``replication``: the same at every grid point, so grid points
    differ by their settings, not by their traffic."""
    seq = np.random.SeedSequence(root_seed, spawn_key=(replication,))
    return int(seq.generate_state(1, dtype=np.uint64)[0])

"""Linux's non-cascading timer wheel (kernel-keepalive.md §11, rule 40): a timer armed at jiffy J
for d jiffies fires at ``floor((J + d) / g) * g + g`` with ``g = 8**level(d)``."""

from __future__ import annotations

import math
from typing import Final

# LVL_START(1..7) in jiffies: the level of a timer is how many of these its delay reaches (§11).
LEVEL_THRESHOLDS_J: Final = (63, 504, 4032, 32256, 258048, 2064384, 16515072)
GRANULARITY_J: Final = tuple(8**level for level in range(len(LEVEL_THRESHOLDS_J) + 1))


def wheel_granularity_j(delay_j: int) -> int:
    """Granularity in jiffies of the wheel level a ``delay_j``-jiffy timer lands in (rule 40):
    ``GRANULARITY_J[bisect_right(LEVEL_THRESHOLDS_J, delay_j)]``, as a chain of comparisons because
    every timer that is armed asks (compiled, a call to ``bisect_right`` would box the constant
    tuple and its seven ints anew each time)."""
    if delay_j < 63:
        return 1
    if delay_j < 504:
        return 8
    if delay_j < 4032:
        return 64
    if delay_j < 32256:
        return 512
    if delay_j < 258048:
        return 4096
    if delay_j < 2064384:
        return 32768
    if delay_j < 16515072:
        return 262144
    return 2097152


def wheel_fire_j(armed_j: float, delay_j: int) -> float:
    """Jiffy at which a timer armed at ``armed_j`` for ``delay_j`` jiffies fires (rule 40).
    Jiffies are whole numbers, held as ``float`` where ticks of either timer mode are (exact below
    2**53 jiffies)."""
    g = wheel_granularity_j(delay_j)
    # floor(x / g), not x // g: the same for the whole (or any non-negative) x and a power of two g,
    # and compiled it is a division instead of a call to fmod
    return math.floor((armed_j + delay_j) / g) * g + g

"""Linux's non-cascading timer wheel (kernel-keepalive.md §11, rule 40): a timer armed at jiffy J
for d jiffies fires at ``floor((J + d) / g) * g + g`` with ``g = 8**level(d)``."""

from __future__ import annotations

from bisect import bisect_right
from typing import Final

# LVL_START(1..7) in jiffies: the level of a timer is how many of these its delay reaches (§11).
LEVEL_THRESHOLDS_J: Final = (63, 504, 4032, 32256, 258048, 2064384, 16515072)
GRANULARITY_J: Final = tuple(8**level for level in range(len(LEVEL_THRESHOLDS_J) + 1))


def wheel_granularity_j(delay_j: int) -> int:
    """Granularity in jiffies of the wheel level a ``delay_j``-jiffy timer lands in (rule 40)."""
    return GRANULARITY_J[bisect_right(LEVEL_THRESHOLDS_J, delay_j)]


def wheel_fire_j(armed_j: float, delay_j: int) -> float:
    """Jiffy at which a timer armed at ``armed_j`` for ``delay_j`` jiffies fires (rule 40).
    Jiffies are whole numbers, held as ``float`` where ticks of either timer mode are (exact below
    2**53 jiffies)."""
    g = GRANULARITY_J[bisect_right(LEVEL_THRESHOLDS_J, delay_j)]
    return (armed_j + delay_j) // g * g + g

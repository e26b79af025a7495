"""Random faults and latency, reproducible from one seed.

One uniform draw per request picks at most one fault, so the fault sequence for a
given seed does not depend on which probabilities are non-zero elsewhere in the run.
Latency has its own generator, so turning faults on does not change the latencies.
"""

from __future__ import annotations

import math
import random

from agentjobs.simulator.config import SimConfig

KINDS = ("529", "500", "drop", "slow")


class Dice:
    def __init__(self, seed: int | None) -> None:
        self._faults = random.Random(seed)
        self._latency = random.Random(None if seed is None else seed + 1)

    def fault(self, config: SimConfig) -> str | None:
        """A fault kind drawn with the configured probabilities, or None."""
        p529, p500, pdrop, pslow = (
            config.fault_529,
            config.fault_500,
            config.fault_drop,
            config.fault_slow,
        )
        if not (p529 or p500 or pdrop or pslow):
            return None
        u = self._faults.random()
        for kind, p in zip(KINDS, (p529, p500, pdrop, pslow), strict=True):
            if u < p:
                return kind
            u -= p
        return None

    def latency_ms(self, config: SimConfig) -> float:
        """Simulated latency: log-normal around the median, capped."""
        median = config.latency_median_ms
        if median <= 0:
            return 0.0
        spread = config.latency_spread
        value = median * math.exp(spread * self._latency.gauss(0.0, 1.0)) if spread else median
        return min(value, config.latency_cap_ms)

"""Random faults and latency, reproducible from one seed.

One uniform draw per request picks at most one fault, so the fault sequence for a
given seed does not depend on which probabilities are non-zero elsewhere in the run.
Latency has its own generator, so turning faults on does not change the latencies.
"""

from __future__ import annotations

import math
import random

from agentjobs.simulator.config import SimConfig

KINDS = ("529", "500", "drop", "slow", "stream_error")


class Dice:
    def __init__(self, seed: int | None) -> None:
        self._faults = random.Random(seed)
        self._latency = random.Random(None if seed is None else seed + 1)

    def fault(self, config: SimConfig) -> str | None:
        """A fault kind drawn with the configured probabilities, or None."""
        probs = (
            config.fault_529,
            config.fault_500,
            config.fault_drop,
            config.fault_slow,
            config.fault_stream_error,
        )
        if not any(probs):
            return None
        u = self._faults.random()
        for kind, p in zip(KINDS, probs, strict=True):
            if u < p:
                return kind
            u -= p
        return None

    def latency_ms(self, config: SimConfig) -> float:
        """Simulated time to first token: log-normal around the median, capped."""
        median = config.latency_median_ms
        if median <= 0:
            return 0.0
        spread = config.latency_spread
        value = median * math.exp(spread * self._latency.gauss(0.0, 1.0)) if spread else median
        return min(value, config.latency_cap_ms)

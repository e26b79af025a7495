"""The state of one simulated organisation, and the record of one request.

Below both the HTTP layer (``server``) and the request logic (``answer``, ``batches``):
they share this state and hand each other ``Call`` records, and neither imports the
other to do so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentjobs.simulator.buckets import ScaledClock
from agentjobs.simulator.config import DIMENSIONS, GROUPS, SimConfig
from agentjobs.simulator.faults import Dice
from agentjobs.simulator.promptcache import PromptCache
from agentjobs.simulator.ratelimit import RateLimits
from agentjobs.simulator.requestlog import RequestLog
from agentjobs.simulator.stats import Stats

#: Settings whose change needs fresh buckets.
_LIMIT_FIELDS = {"rpm", "itpm", "otpm", "burst_s", "otpm_mode", "count_tokens_rpm"} | {
    f"{g}_{d}" for g in GROUPS for d in DIMENSIONS
}


@dataclass
class Call:
    """What one request did, for the response headers, the stats and the log."""

    path: str
    request_id: str
    group: str | None = None
    model: str | None = None
    digest: str | None = None
    fault: str | None = None
    usage: dict[str, int] | None = None
    cost_usd: float = 0.0


class Dropped(Exception):
    """The connection was closed on purpose (fault injection): no response at all."""


class State:
    """Limits, prompt cache, counters, dice and log of one simulated organisation."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.clock = ScaledClock(self.config.time_scale)
        self.limits = RateLimits(self.config, self.clock)
        self.cache = PromptCache(self.clock)
        self.stats = Stats()
        self.dice = Dice(self.config.seed)
        self.log = RequestLog(self.config.log)

    def configure(self, **changes: Any) -> SimConfig:
        """Apply setting changes at once; limit changes give fresh (full) buckets."""
        old, new = self.config, self.config.replace(**changes)
        self.config = new
        if new.time_scale != old.time_scale:
            self.clock.set_scale(new.time_scale)
        if _LIMIT_FIELDS.intersection(changes):
            self.limits.rebuild(new)
        else:
            self.limits.config = new
        if new.seed != old.seed:
            self.dice = Dice(new.seed)
        if new.log != old.log:
            self.log.reopen(new.log)
        return new

    def reset(self) -> None:
        """Zero the counters, refill the buckets, empty the prompt cache, reseed."""
        self.stats.reset()
        self.limits.rebuild(self.config)
        self.cache.clear()
        self.dice = Dice(self.config.seed)

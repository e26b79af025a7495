"""Rate limits per model group, and the ``anthropic-ratelimit-*`` headers they produce.

Buckets run on the scaled clock, but every figure a client sees is in its own (real)
time, because a client measures real time: a limiter that paces by the headers would
otherwise take a simulated minute for a real one. ``-limit`` (and the limit a 429's
message names) is per real minute, the configured figure divided by ``time_scale``;
``-remaining`` is what the bucket admits now, a count that no clock changes; ``-reset``
is the RFC 3339 wall-clock time (second precision) at which the bucket is full again;
``retry-after`` on a 429 is real whole seconds, rounded up and at least 1. At
``time_scale`` 1 the figures are the configured ones.
"""

from __future__ import annotations

import dataclasses
import math
import time

from agentjobs.simulator.buckets import Bucket, GroupLimiter, Refusal, ScaledClock
from agentjobs.simulator.config import GROUPS, SimConfig

_rfc3339_cache: dict[int, str] = {}


def rfc3339(t: float) -> str:
    second = int(t)
    text = _rfc3339_cache.get(second)
    if text is None:
        if len(_rfc3339_cache) > 4096:
            _rfc3339_cache.clear()
        text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        _rfc3339_cache[second] = text
    return text


class RateLimits:
    def __init__(self, config: SimConfig, clock: ScaledClock) -> None:
        self.clock = clock
        self.rebuild(config)

    def rebuild(self, config: SimConfig) -> None:
        """Fresh (full) buckets for the limits in ``config``."""
        self.config = config
        self.groups = {
            g: GroupLimiter(
                config.limit(g, "rpm"),
                config.limit(g, "itpm"),
                config.limit(g, "otpm"),
                config.burst_s,
                self.clock,
                config.otpm_mode,
            )
            for g in GROUPS
        }
        self.count_tokens = Bucket(config.count_tokens_rpm, config.burst_s, self.clock())

    def admit_count_tokens(self) -> Refusal | None:
        now = self.clock()
        wait = self.count_tokens.wait(1, now)
        if wait > 0:
            return Refusal("requests", self.count_tokens.limit, wait)
        self.count_tokens.take(1, now)
        return None

    def per_real_minute(self, limit: int) -> int:
        """A per-simulated-minute ``limit`` as a client counts it: per real minute.

        Rounded down (never more than the bucket refills), at least 1; the tiny factor
        keeps a quotient such as 7 / 0.07 = 99.99... from losing a whole unit.
        """
        return max(1, math.floor(limit / self.clock.scale * (1 + 1e-12)))

    def shown(self, refusal: Refusal) -> Refusal:
        """``refusal`` with its limit per real minute, for the 429's message."""
        return dataclasses.replace(refusal, limit=self.per_real_minute(refusal.limit))

    def retry_after(self, refusal: Refusal) -> int:
        return max(1, math.ceil(refusal.wait_s * self.clock.scale))

    def headers(self, group: str) -> dict[str, str]:
        limiter = self.groups[group]
        now = self.clock()
        wall = time.time()
        scale = self.clock.scale
        out: dict[str, str] = {}
        fractions = []
        for name, bucket, is_tokens in (
            ("requests", limiter.requests, False),
            ("input-tokens", limiter.input, True),
            ("output-tokens", limiter.output, True),
        ):
            remaining = max(0, int(bucket.refill(now)))
            if is_tokens and self.config.round_remaining and bucket.limit >= 10_000:
                remaining -= remaining % 1000
            reset = rfc3339(wall + bucket.full_in(now) * scale)
            prefix = "anthropic-ratelimit-" + name
            limit = self.per_real_minute(bucket.limit)
            out[prefix + "-limit"] = str(limit)
            out[prefix + "-remaining"] = str(remaining)
            out[prefix + "-reset"] = reset
            if is_tokens:
                fractions.append((remaining / bucket.limit, limit, remaining, reset))
        # "tokens" is whichever token limit is the most restrictive right now.
        _, limit, remaining, reset = min(fractions)
        out["anthropic-ratelimit-tokens-limit"] = str(limit)
        out["anthropic-ratelimit-tokens-remaining"] = str(remaining)
        out["anthropic-ratelimit-tokens-reset"] = reset
        return out

    def count_tokens_headers(self) -> dict[str, str]:
        now = self.clock()
        bucket = self.count_tokens
        return {
            "anthropic-ratelimit-requests-limit": str(self.per_real_minute(bucket.limit)),
            "anthropic-ratelimit-requests-remaining": str(max(0, int(bucket.refill(now)))),
            "anthropic-ratelimit-requests-reset": rfc3339(
                time.time() + bucket.full_in(now) * self.clock.scale
            ),
        }

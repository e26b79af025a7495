"""How long an answer takes: time to first token, then output at a steady speed.

    latency = time to first token + output_tokens / output_tokens_per_s

The time to first token is drawn around ``latency_median_ms`` (``faults.Dice``);
everything is simulated time, multiplied by ``time_scale``. ``latency_median_ms: 0``
answers at once (no first-token wait, no output pacing), so zero-latency test setups
stay fast. ``[[sim:latency_ms=N]]`` fixes the whole duration (output paced within
it, the rest before the first token); a slow fault waits ``slow_ms`` before the first
token, without pings. A non-streaming answer sends nothing until it is complete, as
the API's; its output tokens are debited from the OTPM bucket as they are generated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.faults import Dice

#: A non-streaming answer wakes this often (real seconds) to debit its output so far.
SETTLE_EVERY_S = 0.25


@dataclass(frozen=True)
class Pace:
    """Real seconds: before the first token, and per output token."""

    first_s: float
    per_token_s: float
    #: Keep-alive events while waiting (off for a slow fault: a stuck server is silent).
    pings: bool = True

    @property
    def paced(self) -> bool:
        return self.first_s > 0 or self.per_token_s > 0


def plan(
    dice: Dice,
    config: SimConfig,
    scale: float,
    tokens: int,
    fault: str | None,
    forced_ms: int | None,
) -> Pace:
    speed = config.output_tokens_per_s
    if fault == "slow":
        return Pace(config.slow_ms / 1000 * scale, 0.0, pings=False)
    if forced_ms is not None:
        total = max(0.0, forced_ms / 1000)
        generation = min(total, tokens / speed) if speed > 0 else 0.0
        per_token = generation / tokens if tokens else 0.0
        return Pace((total - generation) * scale, per_token * scale)
    if config.latency_median_ms <= 0:
        return Pace(0.0, 0.0)
    first = dice.latency_ms(config) / 1000
    per_token = 1 / speed if speed > 0 else 0.0
    return Pace(first * scale, per_token * scale)


async def generate(pace: Pace, tokens: int, debit: Callable[[int], None]) -> None:
    """Wait as long as ``tokens`` take to generate, calling ``debit`` with the tokens
    generated since the last call (all of them by the end, even if cancelled)."""
    done = 0
    try:
        if pace.first_s > 0:
            await asyncio.sleep(pace.first_s)
        if pace.per_token_s > 0 and tokens:
            start = time.monotonic()
            end = start + tokens * pace.per_token_s
            while (now := time.monotonic()) < end:
                await asyncio.sleep(min(SETTLE_EVERY_S, end - now))
                reached = min(tokens, int((time.monotonic() - start) / pace.per_token_s))
                if reached > done:
                    debit(reached - done)
                    done = reached
    finally:
        # Settle even if the client went away: the tokens were generated all the same.
        if tokens > done:
            debit(tokens - done)

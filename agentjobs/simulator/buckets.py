"""Continuous-refill token buckets, one set (requests, input, output) per rate-limit group.

Pure logic on an injected clock that returns *simulated* seconds; the server passes a
``ScaledClock`` so that a simulated minute can pass in a fraction of a real second.

Anthropic enforces each per-minute limit as a bucket refilled continuously up to its
capacity. Here the capacity is ``limit * burst_s / 60``: ``burst_s=60`` is the API's
full-minute bucket, a small ``burst_s`` makes short bursts trip the limit as they do at
low tiers ("60 RPM may be enforced as 1 request per second").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


class ScaledClock:
    """Simulated seconds: real monotonic time divided by ``time_scale``.

    Changing the scale keeps the current simulated time, so buckets and cache entries
    do not jump when a test reconfigures the server.
    """

    def __init__(self, time_scale: float = 1.0, real: Clock = time.monotonic) -> None:
        self._real = real
        self._scale = time_scale
        self._real0 = real()
        self._sim0 = 0.0

    @property
    def scale(self) -> float:
        return self._scale

    def set_scale(self, time_scale: float) -> None:
        self._sim0 = self()
        self._real0 = self._real()
        self._scale = time_scale

    def __call__(self) -> float:
        return self._sim0 + (self._real() - self._real0) / self._scale


class Bucket:
    """``capacity`` tokens, refilled at ``rate`` per simulated second; may go negative.

    Debt (a negative level) is how a request larger than what is left, or real-time
    output accounting, pushes later requests back without refusing the current one.
    """

    __slots__ = ("_t", "capacity", "level", "limit", "rate")

    def __init__(self, limit_per_min: int, burst_s: float, now: float) -> None:
        self.limit = limit_per_min
        self.rate = limit_per_min / 60.0
        self.capacity = max(1.0, self.rate * burst_s)
        self.level = self.capacity
        self._t = now

    def refill(self, now: float) -> float:
        if now > self._t:
            self.level = min(self.capacity, self.level + (now - self._t) * self.rate)
            self._t = now
        return self.level

    def need(self, amount: float) -> float:
        """What must be in the bucket to admit ``amount``: a request larger than the
        whole bucket needs a full one, otherwise it could never pass."""
        return min(amount, self.capacity)

    def wait(self, amount: float, now: float) -> float:
        """Simulated seconds until ``amount`` can be admitted (0 if it can now)."""
        missing = self.need(amount) - self.refill(now)
        return max(0.0, missing / self.rate)

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount

    def full_in(self, now: float) -> float:
        """Simulated seconds until the bucket is full again."""
        return max(0.0, (self.capacity - self.refill(now)) / self.rate)


@dataclass(frozen=True)
class Refusal:
    """Why a request was refused and how long (simulated seconds) until it would pass."""

    dimension: str  # "requests", "input_tokens" or "output_tokens"
    limit: int
    wait_s: float


class GroupLimiter:
    """The three buckets of one rate-limit group (one model class of one organisation)."""

    def __init__(
        self, rpm: int, itpm: int, otpm: int, burst_s: float, clock: Clock, otpm_mode: str
    ) -> None:
        self.clock = clock
        self.otpm_mode = otpm_mode
        now = clock()
        self.requests = Bucket(rpm, burst_s, now)
        self.input = Bucket(itpm, burst_s, now)
        self.output = Bucket(otpm, burst_s, now)

    def admit(self, input_tokens: int, max_tokens: int) -> Refusal | None:
        """Debit one request and its input (and, in max_tokens mode, ``max_tokens`` of
        output) and return None, or debit nothing and return the Refusal."""
        now = self.clock()
        checks = [(self.requests, "requests", 1.0), (self.input, "input_tokens", input_tokens)]
        if self.otpm_mode == "max_tokens":
            checks.append((self.output, "output_tokens", max_tokens))
        else:
            # Real-time OTPM: nothing is known of the output yet; refuse only once
            # earlier answers have emptied the bucket.
            checks.append((self.output, "output_tokens", 1.0))
        for bucket, name, amount in checks:
            wait = bucket.wait(amount, now)
            if wait > 0:
                return Refusal(name, bucket.limit, wait)
        self.requests.take(1, now)
        self.input.take(input_tokens, now)
        if self.otpm_mode == "max_tokens":
            self.output.take(max_tokens, now)
        return None

    def settle(self, output_tokens: int, reserved: int) -> None:
        """Debit the output actually generated, giving back what was reserved."""
        self.output.take(output_tokens - reserved, self.clock())

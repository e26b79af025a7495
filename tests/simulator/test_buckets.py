"""Bucket arithmetic on a fake clock: no server, no waiting."""

from __future__ import annotations

import pytest

from agentjobs.simulator.buckets import Bucket, GroupLimiter, ScaledClock


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_bucket_starts_full_and_refills_continuously() -> None:
    b = Bucket(60, burst_s=10, now=0.0)  # 1 per second, capacity 10
    assert b.capacity == 10
    for _ in range(10):
        assert b.wait(1, 0.0) == 0
        b.take(1, 0.0)
    assert b.wait(1, 0.0) == pytest.approx(1.0)
    assert b.refill(0.5) == pytest.approx(0.5)
    assert b.refill(100.0) == 10  # never above capacity
    assert b.full_in(100.0) == 0


def test_request_larger_than_bucket_needs_a_full_bucket_and_leaves_debt() -> None:
    b = Bucket(600, burst_s=1, now=0.0)  # capacity 10, 10 per second
    assert b.wait(50, 0.0) == 0  # larger than capacity: admitted when full
    b.take(50, 0.0)
    assert b.level == -40
    assert b.wait(1, 0.0) == pytest.approx(4.1)


def test_group_refuses_without_debiting_and_names_the_dimension() -> None:
    clock = FakeClock()
    g = GroupLimiter(rpm=60, itpm=600, otpm=600, burst_s=1, clock=clock, otpm_mode="realtime")
    assert g.admit(5, 100) is None
    refusal = g.admit(5, 100)
    assert refusal is not None and refusal.dimension == "requests"
    assert refusal.wait_s == pytest.approx(1.0)
    assert g.input.level == 5  # the refused request took nothing
    clock.t = 1.0
    assert g.admit(5, 100) is None


def test_otpm_realtime_refuses_only_once_output_bucket_is_empty() -> None:
    clock = FakeClock()
    g = GroupLimiter(6000, 10**6, otpm=600, burst_s=1, clock=clock, otpm_mode="realtime")
    assert g.admit(1, 1000) is None  # max_tokens far above the bucket: not counted
    g.settle(output_tokens=15, reserved=0)
    refusal = g.admit(1, 1)
    assert refusal is not None and refusal.dimension == "output_tokens"
    clock.t = 0.6  # 10 per second: -5 + 6 = 1 token
    assert g.admit(1, 1) is None


def test_otpm_max_tokens_mode_reserves_and_corrects() -> None:
    clock = FakeClock()
    g = GroupLimiter(6000, 10**6, otpm=600, burst_s=1, clock=clock, otpm_mode="max_tokens")
    assert g.admit(1, 8) is None
    assert g.output.level == 2
    refusal = g.admit(1, 8)
    assert refusal is not None and refusal.dimension == "output_tokens"
    g.settle(output_tokens=3, reserved=8)  # gives back 5 unused tokens
    assert g.output.level == 7
    assert g.admit(1, 7) is None


def test_scaled_clock_keeps_simulated_time_across_rescale() -> None:
    real = FakeClock()
    clock = ScaledClock(0.01, real=real)
    real.t = 1.0
    assert clock() == pytest.approx(100.0)
    clock.set_scale(1.0)
    assert clock() == pytest.approx(100.0)
    real.t = 2.0
    assert clock() == pytest.approx(101.0)

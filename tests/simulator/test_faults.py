"""Fault injection rates, reproducibility, dropped and slow answers, latency."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter

import anthropic
import httpx2
import pytest

from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.faults import Dice

from .conftest import StartSim, sdk, user

BODY = {"model": "haiku", "max_tokens": 5, "messages": user("fault?")}


def statuses(base_url: str, n: int) -> list[str]:
    out = []
    with httpx2.Client(base_url=base_url, headers={"x-api-key": "k"}) as c:
        for _ in range(n):
            try:
                out.append(str(c.post("/v1/messages", json=BODY).status_code))
            except httpx2.TransportError:
                out.append("drop")
    return out


def test_fault_rates_within_statistical_bounds_and_reproducible(start_sim: StartSim) -> None:
    n = 1000
    probs = {"529": 0.2, "500": 0.1, "drop": 0.05}
    # Limits out of the way: what is counted is faults, not 429s.
    s = start_sim(fault_529=0.2, fault_500=0.1, fault_drop=0.05, seed=42, rpm=10**6)
    seen = statuses(s.base_url, n)
    counts = Counter(seen)
    for kind, p in probs.items():
        sigma = math.sqrt(n * p * (1 - p))
        assert abs(counts[kind] - n * p) <= 4 * sigma, (kind, counts)
    assert counts["200"] + sum(counts[k] for k in probs) == n
    stats = s.stats()
    assert stats["faults"] == {k: counts[k] for k in probs}
    assert stats["by_status"]["529"] == counts["529"]
    assert stats["by_status"]["dropped"] == counts["drop"]
    assert stats["by_error_type"]["overloaded_error"] == counts["529"]
    # Same seed, same sequence.
    s.reset()
    assert statuses(s.base_url, 200) == seen[:200]


def test_sdk_sees_overloaded_internal_and_connection_errors(start_sim: StartSim) -> None:
    for setting, exc in (
        ("fault_529", anthropic.OverloadedError),
        ("fault_500", anthropic.InternalServerError),
        ("fault_drop", anthropic.APIConnectionError),
    ):
        s = start_sim(**{setting: 1.0})
        with sdk(s) as c, pytest.raises(exc) as info:
            c.messages.create(model="haiku", max_tokens=5, messages=user("x"))
        if setting == "fault_529":
            assert info.value.body["error"]["message"] == "Overloaded"  # type: ignore[attr-defined]


def test_fault_directive_and_zeroing_at_runtime(start_sim: StartSim) -> None:
    s = start_sim(fault_529=1.0)
    s.configure(fault_529=0.0)
    with sdk(s) as c:
        c.messages.create(model="haiku", max_tokens=5, messages=user("fine"))
        with pytest.raises(anthropic.APIConnectionError):
            c.messages.create(model="haiku", max_tokens=5, messages=user("[[sim:fault=drop]]"))
    assert s.stats()["faults"] == {"drop": 1}


def test_slow_answer_times_the_client_out(start_sim: StartSim) -> None:
    s = start_sim(fault_slow=1.0, slow_ms=600)
    with sdk(s, timeout=0.15) as c, pytest.raises(anthropic.APITimeoutError):
        c.messages.create(model="haiku", max_tokens=5, messages=user("slow"))
    assert s.stats()["faults"] == {"slow": 1}


def test_latency_scaled_and_forced(start_sim: StartSim) -> None:
    s = start_sim(latency_median_ms=10_000, latency_spread=0, time_scale=0.005)
    with sdk(s) as c:
        t0 = time.monotonic()
        c.messages.create(model="haiku", max_tokens=5, messages=user("a"))
        plain = time.monotonic() - t0
        t0 = time.monotonic()
        c.messages.create(model="haiku", max_tokens=5, messages=user("[[sim:latency_ms=40000]]"))
        forced = time.monotonic() - t0
    assert 0.05 <= plain < 0.15  # 10 s simulated = 0.05 s real
    assert 0.2 <= forced < 0.3  # 40 s simulated = 0.2 s real


def test_latency_distribution_median_spread_cap() -> None:
    config = SimConfig(latency_median_ms=1000, latency_spread=0.5, latency_cap_ms=3000, seed=7)
    dice = Dice(config.seed)
    draws = [dice.latency_ms(config) for _ in range(4000)]
    assert 900 < statistics.median(draws) < 1100
    assert max(draws) == 3000  # capped, and the cap is reached at this spread
    assert min(draws) < 500
    again = Dice(config.seed)
    assert [again.latency_ms(config) for _ in range(10)] == draws[:10]

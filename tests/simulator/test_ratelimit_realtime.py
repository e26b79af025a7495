"""A time-scaled simulator states its rate limits in the client's (real) time.

Its buckets run on the scaled clock, so at ``time_scale`` 0.01 "60 RPM" refills 100
requests per real second: the headers and the 429's message must say 6000 per minute,
or a client pacing itself by them (agentjobs' limiter does) runs a hundred times slower
than the server allows.
"""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import anthropic
import pytest

from .conftest import StartSim, sdk, user


def ok(c: anthropic.Anthropic, text: str = "hi", model: str = "haiku") -> Any:
    return c.messages.with_raw_response.create(model=model, max_tokens=50, messages=user(text))


def test_scaled_limits_are_per_real_minute(start_sim: StartSim) -> None:
    s = start_sim(rpm=60, itpm=600_000, otpm=120_000, count_tokens_rpm=120, time_scale=0.01)
    with sdk(s) as c:
        h = ok(c).headers
        raw_count = c.messages.with_raw_response.count_tokens(model="haiku", messages=user("hi"))
    assert h["anthropic-ratelimit-requests-limit"] == "6000"
    assert h["anthropic-ratelimit-input-tokens-limit"] == "60000000"
    assert h["anthropic-ratelimit-output-tokens-limit"] == "12000000"
    assert h["anthropic-ratelimit-tokens-limit"] in ("60000000", "12000000")
    # What the bucket admits now is a count, the same on any clock: 2 s of refill at
    # 60 RPM hold 2 requests, one taken (and at most one refilled since).
    assert int(h["anthropic-ratelimit-requests-remaining"]) in (1, 2)
    # Full again 0.02 real s later: -reset is the wall clock, not 2 simulated s away.
    reset = datetime.fromisoformat(h["anthropic-ratelimit-requests-reset"]).timestamp()
    assert abs(reset - time.time()) < 1.5
    assert raw_count.headers["anthropic-ratelimit-requests-limit"] == "12000"


def test_unscaled_limits_are_the_configured_ones(start_sim: StartSim) -> None:
    s = start_sim(rpm=60, itpm=600_000, otpm=120_000)
    with sdk(s) as c:
        h = ok(c).headers
    assert h["anthropic-ratelimit-requests-limit"] == "60"
    assert h["anthropic-ratelimit-input-tokens-limit"] == "600000"
    assert h["anthropic-ratelimit-output-tokens-limit"] == "120000"


def test_a_429_names_the_limit_per_real_minute(start_sim: StartSim) -> None:
    # One request per simulated minute = per 6 real s: the second request is refused
    # however slow the machine, and the wait it is told is in real seconds.
    s = start_sim(rpm=1, burst_s=1, time_scale=0.1)
    with sdk(s) as c:
        assert ok(c).headers["anthropic-ratelimit-requests-limit"] == "10"
        with pytest.raises(anthropic.RateLimitError) as info:
            ok(c)
    err = info.value
    assert "rate limit of 10 requests per minute" in (err.api_message or ""), err.api_message
    assert err.response.headers["anthropic-ratelimit-requests-limit"] == "10"
    assert int(err.response.headers["retry-after"]) in (5, 6)  # 60 simulated s x 0.1


def test_a_429_names_input_tokens_per_real_minute(start_sim: StartSim) -> None:
    # A request larger than the whole bucket passes when it is full and leaves a debt
    # (4,000 tokens at 1,000 per real second): the next one is refused.
    s = start_sim(itpm=600, burst_s=60, time_scale=0.01)
    with sdk(s) as c:
        ok(c, text="x" * 16_000)
        with pytest.raises(anthropic.RateLimitError) as info:
            ok(c)
    assert "60000 input tokens per minute" in (info.value.api_message or "")


def test_the_bucket_admits_about_100_per_real_second(start_sim: StartSim) -> None:
    """60 RPM at time_scale 0.01, as the headers say: 6000 a real minute, 100 a second.

    No more: requests as fast as eight threads send them get at most the bucket (two
    requests) plus 100 a second of the time they took. No less: a client that sends
    its next request 12 ms (1.2 refills) after an answer is never refused, whatever
    the machine's speed (a slower client only leaves more time to refill). The sleeps
    are that client's pace, not a wait for anything.
    """
    s = start_sim(rpm=60, time_scale=0.01)
    with sdk(s) as c:
        ok(c)  # connection and first request out of the way
        for i in range(30):
            time.sleep(0.012)
            ok(c, text=f"paced {i}")
    assert s.stats()["rate_limited"] == 0

    s.reset()  # full bucket, zero counters
    started = time.monotonic()
    deadline = started + 0.5

    def hammer(i: int) -> None:
        with sdk(s) as c:
            while time.monotonic() < deadline:
                with contextlib.suppress(anthropic.RateLimitError):
                    ok(c, text=f"hammer {i}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hammer, range(8)))
    elapsed = time.monotonic() - started
    stats = s.stats()
    assert stats["ok"] <= 2 + 100 * elapsed + 1, (stats["ok"], elapsed)
    print(f"hammered {elapsed:.2f}s: {stats['ok']} admitted, {stats['rate_limited']} refused")

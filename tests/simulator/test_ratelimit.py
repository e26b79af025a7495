"""Rate limits through the SDK: bursts, refill on the scaled clock, ITPM, OTPM modes,
cache reads, shared groups, headers, spend cap."""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anthropic
import pytest

from .conftest import StartSim, sdk, user


def ok(c: anthropic.Anthropic, model: str = "haiku", text: str = "hi", **kw: Any) -> Any:
    return c.messages.with_raw_response.create(
        model=model, max_tokens=kw.pop("max_tokens", 50), messages=user(text), **kw
    )


def test_burst_then_429_with_retry_after_and_headers(start_sim: StartSim) -> None:
    s = start_sim(rpm=60, burst_s=5)  # 1 request per second, 5 at once
    with sdk(s) as c:
        remaining = [int(ok(c).headers["anthropic-ratelimit-requests-remaining"]) for _ in "12345"]
        assert remaining == [4, 3, 2, 1, 0]
        with pytest.raises(anthropic.RateLimitError) as info:
            ok(c)
    err = info.value
    assert err.type == "rate_limit_error" and "60 requests per minute" in (err.api_message or "")
    assert err.response.headers["retry-after"] == "1"
    assert err.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert err.error_code is None
    stats = s.stats()
    assert stats["rate_limited"] == 1 and stats["rate_limited_by_dimension"] == {"requests": 1}


def test_retry_after_is_real_seconds(start_sim: StartSim) -> None:
    slow = start_sim(rpm=6, burst_s=10)  # one request, then 10 s until the next
    fast = start_sim(rpm=6, burst_s=10, time_scale=0.01)  # same, 0.1 real s
    for handle, expected in ((slow, "10"), (fast, "1")):
        with sdk(handle) as c:
            ok(c)
            with pytest.raises(anthropic.RateLimitError) as info:
                ok(c)
        assert info.value.response.headers["retry-after"] == expected


def test_refill_over_scaled_time(start_sim: StartSim) -> None:
    # 6 RPM = one request per 10 simulated s = per 0.2 real s at time_scale 0.02. What
    # comes back between the first 429 and the next is what the scaled clock refilled in
    # that interval, however long the machine took: the interval is bounded from the
    # client's side (the server's own instants lie between these readings).
    s = start_sim(rpm=6, burst_s=100, time_scale=0.02)
    with sdk(s) as c:
        for _ in range(10):
            ok(c)
        sent_first = time.monotonic()
        with pytest.raises(anthropic.RateLimitError):
            ok(c)
        refused_first = time.monotonic()
        time.sleep(1.0)  # let the scaled clock refill about 5 requests
        admitted = 0
        while admitted < 200:
            sent_last = time.monotonic()
            try:
                ok(c)
                admitted += 1
            except anthropic.RateLimitError:
                refused_last = time.monotonic()
                break
        shortest = (sent_last - refused_first) / 0.2
        longest = (refused_last - sent_first) / 0.2
        assert admitted >= 4  # the sleep alone refilled 5
        assert math.floor(shortest) - 1 <= admitted <= math.ceil(longest)
        # Left alone long enough, the bucket is full again (and never fuller).
        time.sleep(2.2)  # 10 refills of 0.2 s: full, and it stays at 10
        assert ok(c).headers["anthropic-ratelimit-requests-remaining"] == "9"


def test_itpm_refuses_and_names_input_tokens(start_sim: StartSim) -> None:
    s = start_sim(itpm=600, burst_s=60)  # a full-minute bucket: remaining = limit - used
    with sdk(s) as c:
        first = ok(c, text="x" * 1600)
        used = first.parse().usage.input_tokens
        remaining = int(first.headers["anthropic-ratelimit-input-tokens-remaining"])
        assert remaining == 600 - used  # small limits are not rounded
        with pytest.raises(anthropic.RateLimitError) as info:
            ok(c, text="y" * 1600)
    assert "600 input tokens per minute" in (info.value.api_message or "")
    assert s.stats()["rate_limited_by_dimension"] == {"input_tokens": 1}


@pytest.mark.parametrize("mode", ["realtime", "max_tokens"])
def test_otpm_modes(start_sim: StartSim, mode: str) -> None:
    s = start_sim(otpm=600, otpm_mode=mode, burst_s=60)  # the arithmetic of a full minute
    with sdk(s) as c:
        # Reserves 400 in max_tokens mode, then only the 100 generated count.
        ok(c, text="a [[sim:output_tokens=100]]", max_tokens=400)
        headers = ok(c, text="b [[sim:output_tokens=1]]", max_tokens=1).headers
        assert headers["anthropic-ratelimit-output-tokens-remaining"] == "499"
        second: Any = None
        try:
            # 499 left: too little for max_tokens=550 up front, plenty in real time.
            second = ok(c, text="c [[sim:output_tokens=10]]", max_tokens=550)
        except anthropic.RateLimitError as exc:
            assert "output tokens per minute" in (exc.api_message or "")
        if mode == "realtime":
            assert second is not None
            # Real time: a long answer drives the bucket into debt, then refuses.
            ok(c, text="d [[sim:output_tokens=1000]]", max_tokens=1000)
            with pytest.raises(anthropic.RateLimitError):
                ok(c, text="e", max_tokens=1)
        else:
            assert second is None


def test_cache_reads_do_not_count_toward_itpm(start_sim: StartSim) -> None:
    s = start_sim(itpm=20_000, burst_s=60)  # a full minute: 20,000 before the first refusal
    system = [{"type": "text", "text": "rules " * 4000, "cache_control": {"type": "ephemeral"}}]
    with sdk(s) as c:
        for i in range(8):  # ~6,000 tokens each: 48,000 raw input, 20,000 limit
            msg = c.messages.create(
                model="haiku", max_tokens=5, system=system, messages=user(f"question {i}")
            )
            if i:
                assert msg.usage.cache_read_input_tokens > 4096
        plain = [{"type": "text", "text": "rules " * 4000}]
        with pytest.raises(anthropic.RateLimitError):
            for i in range(4):
                c.messages.create(
                    model="haiku", max_tokens=5, system=plain, messages=user(f"uncached {i}")
                )


def test_groups_share_buckets_and_take_overrides(start_sim: StartSim) -> None:
    s = start_sim(rpm=60, burst_s=2, haiku_rpm=120)
    with sdk(s) as c:
        ok(c, model="claude-sonnet-4-5")
        ok(c, model="claude-sonnet-4-6")
        with pytest.raises(anthropic.RateLimitError):
            ok(c, model="claude-sonnet-4-5-20250929")
        opus = ok(c, model="claude-opus-4-5")
        assert opus.headers["anthropic-ratelimit-requests-limit"] == "60"
        assert (
            ok(c, model="claude-opus-4-7").headers["anthropic-ratelimit-requests-remaining"] == "0"
        )
        haiku = ok(c, model="haiku")
        assert haiku.headers["anthropic-ratelimit-requests-limit"] == "120"


def test_tokens_headers_follow_the_most_restrictive_limit(start_sim: StartSim) -> None:
    s = start_sim(itpm=100_000, otpm=10_000, round_remaining=False, burst_s=60)
    with sdk(s) as c:
        h = ok(c, text="hi [[sim:output_tokens=5000]]", max_tokens=6000).headers
    assert h["anthropic-ratelimit-output-tokens-remaining"] == "5000"
    assert h["anthropic-ratelimit-tokens-limit"] == "10000"
    assert h["anthropic-ratelimit-tokens-remaining"] == "5000"
    assert int(h["anthropic-ratelimit-input-tokens-remaining"]) > 99_000  # not rounded


def test_spend_cap(start_sim: StartSim) -> None:
    s = start_sim(spend_limit_usd=0.001)  # haiku output at $5/M: 200 tokens
    with sdk(s) as c:
        ok(c, text="[[sim:output_tokens=150]]", max_tokens=200)
        ok(c, text="[[sim:output_tokens=150]]", max_tokens=200)
        with pytest.raises(anthropic.RateLimitError) as info:
            ok(c)
    err = info.value
    assert isinstance(err, anthropic.EnforcedSpendLimitReachedError)
    assert err.error_code == "enforced_spend_limit_reached"
    assert "retry-after" not in err.response.headers
    s.configure(spend_limit_usd=None)
    with sdk(s) as c:
        ok(c)


def test_count_tokens_has_its_own_rpm(start_sim: StartSim) -> None:
    s = start_sim(count_tokens_rpm=60, burst_s=2, rpm=60)
    with sdk(s) as c:
        for _ in range(2):
            c.messages.count_tokens(model="haiku", messages=user("hi"))
        with pytest.raises(anthropic.RateLimitError):
            c.messages.count_tokens(model="haiku", messages=user("hi"))
        ok(c)  # the messages bucket is untouched


def test_default_burst_is_seconds_not_a_minute(start_sim: StartSim) -> None:
    # The API enforces per-minute limits over short intervals: twelve requests at once
    # against 60 RPM must not all pass. A slow clock (1 simulated s = 1,000 real s)
    # keeps refill out of the count.
    s = start_sim(rpm=60, time_scale=1000)

    def one(i: int) -> int:
        with sdk(s) as c:
            try:
                ok(c, text=f"burst {i}")
                return 200
            except anthropic.RateLimitError:
                return 429

    with ThreadPoolExecutor(12) as pool:
        codes = sorted(pool.map(one, range(12)))
    assert codes == [200] * 2 + [429] * 10  # two seconds of refill at 1 request/s

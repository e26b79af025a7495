"""Prompt caching: write, read, lifetime, minimum length, breakpoint limit."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest

from .conftest import StartSim, sdk, user

LONG = "policy " * 2500  # ~4,400 tokens: above every model's minimum


def cached_system(text: str = LONG, ttl: str | None = None) -> list[dict[str, Any]]:
    cc: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        cc["ttl"] = ttl
    return [{"type": "text", "text": text, "cache_control": cc}]


def ask(c: anthropic.Anthropic, system: Any, question: str = "q", model: str = "haiku") -> Any:
    return c.messages.create(model=model, max_tokens=5, system=system, messages=user(question))


def test_write_then_read(client: anthropic.Anthropic) -> None:
    first = ask(client, cached_system(), "one")
    assert first.usage.cache_creation_input_tokens > 4096
    assert first.usage.cache_read_input_tokens == 0
    second = ask(client, cached_system(), "two")
    assert second.usage.cache_creation_input_tokens == 0
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    # The three parts always add up to what count_tokens says.
    counted = client.messages.count_tokens(
        model="haiku", system=cached_system(), messages=user("two")
    ).input_tokens
    u = second.usage
    assert u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens == counted
    # Another model has its own cache.
    assert ask(client, cached_system(), "two", model="opus").usage.cache_read_input_tokens == 0


def test_below_minimum_caches_nothing(client: anthropic.Anthropic) -> None:
    short = cached_system("policy " * 1000)  # ~1,750 tokens: below Haiku's 4,096
    for _ in range(2):
        u = ask(client, short).usage
        assert u.cache_creation_input_tokens == 0 and u.cache_read_input_tokens == 0
    # ... but above Sonnet's 1,024.
    ask(client, short, model="sonnet")
    assert ask(client, short, model="sonnet").usage.cache_read_input_tokens > 1024


def test_longer_breakpoint_writes_only_the_difference(client: anthropic.Anthropic) -> None:
    base = ask(client, cached_system()).usage.cache_creation_input_tokens
    two = [
        *cached_system(),
        {"type": "text", "text": "more " * 2000, "cache_control": {"type": "ephemeral"}},
    ]
    u = ask(client, two).usage
    assert u.cache_read_input_tokens == base
    assert 2000 < u.cache_creation_input_tokens < 3000


def test_five_minute_entry_expires_one_hour_entry_does_not(start_sim: StartSim) -> None:
    s = start_sim(time_scale=0.001)  # 5 simulated minutes = 0.3 real seconds
    with sdk(s) as c:
        ask(c, cached_system(), "a")
        one_hour = ask(c, cached_system("context " * 2500, ttl="1h"), "a").usage
        assert one_hour.cache_creation_input_tokens > 4096
        assert ask(c, cached_system(), "b").usage.cache_read_input_tokens > 0
        time.sleep(0.6)  # 10 simulated minutes: what is tested is the scaled TTL
        expired = ask(c, cached_system(), "c").usage
        assert expired.cache_read_input_tokens == 0 and expired.cache_creation_input_tokens > 0
        kept = ask(c, cached_system("context " * 2500, ttl="1h"), "c").usage
        assert kept.cache_read_input_tokens == one_hour.cache_creation_input_tokens


def test_hit_refreshes_lifetime(start_sim: StartSim) -> None:
    # 5 simulated minutes = 1.5 real s; hits every 0.5 s leave a loaded machine a second
    # of slack per gap, and four of them reach past the first lifetime.
    s = start_sim(time_scale=0.005)
    with sdk(s) as c:
        ask(c, cached_system())
        for _ in range(4):  # 4 x 0.5 s: past the first lifetime, kept alive by hits
            time.sleep(0.5)
            assert ask(c, cached_system()).usage.cache_read_input_tokens > 0


def test_more_than_four_breakpoints_is_400(client: anthropic.Anthropic) -> None:
    blocks = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    with pytest.raises(anthropic.BadRequestError, match="maximum of 4 blocks"):
        ask(client, blocks)


def test_stats_count_cache_tokens(server: Any, client: anthropic.Anthropic) -> None:
    w = ask(client, cached_system()).usage.cache_creation_input_tokens
    r = ask(client, cached_system(), "other").usage.cache_read_input_tokens
    stats = server.stats()
    assert stats["cache_creation_input_tokens"] == w
    assert stats["cache_read_input_tokens"] == r

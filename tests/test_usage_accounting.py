"""What a call costs beyond plain tokens: thinking (counted in output, as the API does),
web searches (per 1,000 requests), read from the answer's usage once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentjobs import catalog
from agentjobs.api import client
from agentjobs.messages.result import ServerToolUse, Usage
from agentjobs.messages.usage import cost_usd, usage_of
from agentjobs.settings import reset_settings

SONNET = catalog.resolve("sonnet")


def test_thinking_is_output_in_the_tokens_and_the_cost(fresh_sim: Any) -> None:
    base = {
        "model": SONNET.id,
        "max_tokens": 4000,
        "messages": [{"role": "user", "content": "[[sim:output_tokens=40]] think, then answer"}],
    }
    plain = client.create_message(base)
    thought = client.create_message(
        {**base, "thinking": {"type": "enabled", "budget_tokens": 2000}}
    )
    kinds = [b.type for b in thought.message.content]
    assert kinds[0] == "thinking" and thought.message.content[0].signature
    extra = thought.usage.output_tokens - plain.usage.output_tokens
    assert extra > 0  # the thinking block's tokens
    assert thought.cost_usd - plain.cost_usd == pytest.approx(
        (thought.usage.input_tokens - plain.usage.input_tokens) * SONNET.price.input * 1e-6
        + extra * SONNET.price.output * 1e-6
    )


def test_web_searches_are_read_and_priced_per_thousand() -> None:
    answer = {
        "usage": {
            "input_tokens": 1000,
            "output_tokens": 100,
            "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
        }
    }
    usage = usage_of(answer)
    assert usage.server_tool_use == ServerToolUse(web_search_requests=3, web_fetch_requests=1)
    tokens = cost_usd(SONNET.id, Usage(input_tokens=1000, output_tokens=100))
    assert cost_usd(SONNET.id, usage) == pytest.approx(tokens + 3 * 10.0 / 1000)
    assert cost_usd(SONNET.id, usage, batch=True) == pytest.approx((tokens + 0.03) * 0.5)
    assert usage_of({"usage": {"input_tokens": 1}}).server_tool_use is None


def test_the_web_search_price_can_be_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    prices = {"input": 3, "cache_write_5m": 3.75, "cache_write_1h": 6, "cache_read": 0.3}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({SONNET.id: {**prices, "output": 15, "web_search_per_1k": 25}}))
    monkeypatch.setenv("AGENTJOBS_PRICES_FILE", str(path))
    reset_settings()
    try:
        usage = Usage(server_tool_use=ServerToolUse(web_search_requests=2))
        assert cost_usd(SONNET.id, usage) == pytest.approx(0.05)
        # the per-search price is optional in the file: a file without it keeps $10
        path.write_text(json.dumps({SONNET.id: {**prices, "output": 15}}))
        reset_settings()
        assert cost_usd(SONNET.id, usage) == pytest.approx(0.02)
    finally:
        monkeypatch.delenv("AGENTJOBS_PRICES_FILE")
        reset_settings()

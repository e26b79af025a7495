"""The streamed transport against the simulator over HTTP with the real SDK: the same
answer as the plain call, its pace measured, an ``error`` event after the 200 classified
as the status it stands for, a stalled stream cut by the idle timeout, a total budget."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from agentjobs import catalog
from agentjobs.api import client
from agentjobs.api.stream import stream_message, total_budget_s
from agentjobs.reliability.retry import classify
from agentjobs.settings import Settings, reset_settings

MODEL = "claude-haiku-4-5"


@pytest.fixture
def env(sim: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("AGENTJOBS_STREAM_FROM_MAX_TOKENS", "1")  # these calls stream
    reset_settings()
    client.reset_client()
    yield monkeypatch
    reset_settings()
    client.reset_client()


def _params(text: str, max_tokens: int = 64) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
        "temperature": 0.0,  # not a `stream` argument in this SDK: goes in extra_body
    }


def test_short_calls_are_plain_long_ones_streamed_both_bounded_by_the_call(
    env: Any, fresh_sim: Any
) -> None:
    # A plain call is given as long as a stream of it would be, not the client's fixed
    # request timeout: an answer slower than that timeout is not cut off (and paid twice).
    env.setenv("AGENTJOBS_STREAM_FROM_MAX_TOKENS", "1000")
    env.setenv("AGENTJOBS_REQUEST_TIMEOUT_S", "0.3")
    reset_settings()
    client.reset_client()
    fresh_sim.configure(latency_median_ms=800, output_tokens_per_s=0)
    short = client.create_message(_params("[[sim:output_tokens=20]] short", 999))
    long = client.create_message(_params("[[sim:output_tokens=20]] long", 1000))
    assert (short.ttft_s, long.ttft_s is not None) == (None, True)  # plain, then streamed
    assert fresh_sim.stats()["ok"] == 2


def test_a_streamed_answer_is_the_plain_answer_with_its_pace(env: Any, fresh_sim: Any) -> None:
    fresh_sim.configure(latency_median_ms=200, output_tokens_per_s=200)
    params = _params("[[sim:output_tokens=40]] say something", 64)
    streamed = client.create_message(params)
    env.setenv("AGENTJOBS_STREAM", "false")
    reset_settings()
    plain = client.create_message(params)
    # As the result keeps them (ClaudeResult.content): the same blocks, the same fields.
    assert [b.to_dict(mode="json") for b in streamed.message.content] == [
        b.to_dict(mode="json") for b in plain.message.content
    ]
    assert streamed.usage == plain.usage
    assert streamed.usage.output_tokens == 40
    assert streamed.headers.get("anthropic-ratelimit-output-tokens-limit")
    assert streamed.request_id
    assert streamed.ttft_s is not None and streamed.ttft_s > 0
    assert streamed.output_tokens_per_s is not None and streamed.output_tokens_per_s > 0
    assert plain.ttft_s is None
    assert fresh_sim.stats()["ok"] == 2


def test_an_error_event_after_the_200_is_an_overload(env: Any, fresh_sim: Any) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        client.create_message(_params("[[sim:fault=stream_error]] [[sim:output_tokens=50]] hi"))
    assert info.value.status_code == 200  # what the SDK says: the stream had begun
    failure = classify(info.value)
    assert (failure.kind, failure.status, failure.action) == ("overloaded", 529, "backoff")


def test_a_stalled_stream_is_cut_by_the_idle_timeout(env: Any, fresh_sim: Any) -> None:
    # 3 simulated seconds to the first token, and no ping in between: silence.
    fresh_sim.configure(latency_median_ms=1, output_tokens_per_s=0)
    env.setenv("AGENTJOBS_STREAM_IDLE_TIMEOUT_S", "0.5")
    reset_settings()
    client.reset_client()
    with pytest.raises(anthropic.APITimeoutError) as info:
        client.create_message(_params("[[sim:latency_ms=3000]] hi"))
    assert classify(info.value).kind == "timeout"


def test_the_total_budget_ends_a_stream_that_outlasts_it(env: Any, fresh_sim: Any) -> None:
    fresh_sim.configure(latency_median_ms=1, output_tokens_per_s=2000)
    s = Settings(stream_first_token_allowance_s=1.0, stream_min_tokens_per_s=1e9)
    ticks = iter(range(0, 10_000, 1))  # a clock 1 s per event: the budget (~6 s) runs out
    with pytest.raises(anthropic.APITimeoutError):
        stream_message(
            client.get_client(),
            _params("[[sim:output_tokens=200]] hi", 256),
            s,
            clock=lambda: float(next(ticks)),
        )


def test_the_default_budget_carries_every_model_s_longest_answer() -> None:
    s = Settings()
    for model in catalog.models().values():
        at_api_speed = model.max_output_tokens / 30.0  # a slow but real output rate
        assert total_budget_s(model.max_output_tokens, s) > at_api_speed, model.id

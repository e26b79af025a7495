"""Bad input raises RequestError at ``.delay()`` and nothing reaches a queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs import RequestError, app, complete
from agentjobs.contrib.testing import RedisServer

QUEUES = ("claude.haiku", "claude.sonnet", "claude.opus")
OK = {"prompt": "hello"}


class Unserialisable:
    pass


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no prompt", {}, "exactly one of prompt or messages"),
    (
        "prompt and messages",
        {"prompt": "a", "messages": [{"role": "user", "content": "b"}]},
        "exactly one of prompt or messages",
    ),
    ("unknown model", {**OK, "model": "gpt-4o"}, "unknown model 'gpt-4o'"),
    ("model not a string", {**OK, "model": 3}, "model: Input should be a valid string"),
    ("max_tokens 0", {**OK, "max_tokens": 0}, "max_tokens must be at least 1"),
    ("max_tokens negative", {**OK, "max_tokens": -5}, "max_tokens must be at least 1"),
    ("max_tokens a string", {**OK, "max_tokens": "100"}, "max_tokens: Input should be a valid"),
    ("max_tokens a float", {**OK, "max_tokens": 10.5}, "max_tokens: Input should be a valid"),
    (
        "max_tokens above the model's limit",
        {**OK, "model": "haiku", "max_tokens": 64_001},
        "exceeds claude-haiku-4-5's 64000",
    ),
    ("empty messages", {"messages": []}, "messages must not be empty"),
    (
        "wrong role",
        {"messages": [{"role": "system", "content": "hi"}]},
        "messages.0.role: Input should be 'user' or 'assistant'",
    ),
    (
        "first message from the assistant",
        {"messages": [{"role": "assistant", "content": "hi"}]},
        "first message must have role 'user'",
    ),
    (
        "non-text content",
        {"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]},
        "messages.0.content",
    ),
    (
        "blank text block",
        {"messages": [{"role": "user", "content": [{"type": "text", "text": " "}]}]},
        "messages.0.content.list[TextBlock].0.text: text must not be empty",
    ),
    ("40 MB metadata", {**OK, "metadata": {"blob": "x" * 40_000_000}}, "over the 33554432-byte"),
    (
        "empty content list",
        {"messages": [{"role": "user", "content": []}]},
        "content must not be an empty list",
    ),
    ("empty prompt", {"prompt": "   "}, "prompt must not be empty"),
    ("prompt not a string", {"prompt": 42}, "prompt: Input should be a valid string"),
    ("40 MB prompt", {"prompt": "x" * 40_000_000}, "over the 33554432-byte limit"),
    (
        "metadata not JSON",
        {**OK, "metadata": {"obj": Unserialisable()}},
        "metadata must be JSON-serialisable",
    ),
    ("metadata NaN", {**OK, "metadata": {"x": float("nan")}}, "metadata must be JSON-serialisable"),
    (
        "metadata.user_id not a string",
        {**OK, "metadata": {"user_id": 7}},
        "user_id must be a string",
    ),
    ("bad tenant", {**OK, "tenant": "acme corp!"}, "tenant must be 1-64 characters"),
    ("temperature above 1", {**OK, "temperature": 1.5}, "temperature: Input should be less"),
    ("temperature negative", {**OK, "temperature": -0.1}, "temperature: Input should be greater"),
    ("temperature a string", {**OK, "temperature": "hot"}, "temperature"),
    ("stop_sequences not a list", {**OK, "stop_sequences": "END"}, "stop_sequences"),
    ("empty idempotency key", {**OK, "idempotency_key": ""}, "idempotency_key"),
    ("unknown argument", {**OK, "prompt_text": "x"}, "prompt_text: Extra inputs are not permitted"),
    ("cache not a bool", {**OK, "cache": "yes"}, "cache: Input should be a valid boolean"),
]


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(app.conf.broker_url)
    yield client
    client.close()


def queue_lengths(broker: redis.Redis) -> dict[str, int]:
    return {q: int(broker.llen(q)) for q in QUEUES}


@pytest.mark.parametrize(("kwargs", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_raises_at_delay_and_enqueues_nothing(
    broker: redis.Redis, kwargs: dict[str, Any], expected: str
) -> None:
    before = queue_lengths(broker)
    with pytest.raises(RequestError) as info:
        complete.delay(**kwargs)
    message = str(info.value)
    assert expected in message
    assert message.startswith("invalid agentjobs.complete request: ")
    assert len(message) < 500  # a sentence, not a dump (the 40 MB prompt is not echoed)
    assert info.value.__cause__ is None  # no chained pydantic traceback
    assert queue_lengths(broker) == before


def test_positional_arguments_are_refused(broker: redis.Redis) -> None:
    before = queue_lengths(broker)
    with pytest.raises(RequestError, match="keyword arguments only"):
        complete.delay("hello")
    assert queue_lengths(broker) == before


def test_explicit_queue_of_another_family_is_refused(broker: redis.Redis) -> None:
    before = queue_lengths(broker)
    with pytest.raises(RequestError, match="does not serve model claude-haiku-4-5"):
        complete.apply_async(kwargs={"prompt": "hi", "model": "haiku"}, queue="claude.opus")
    assert queue_lengths(broker) == before


@pytest.mark.parametrize(
    ("model", "queue"),
    [("haiku", "claude.haiku"), ("claude-sonnet-4-5", "claude.sonnet"), ("opus", "claude.opus")],
)
def test_good_input_is_routed_by_model_family(
    broker: redis.Redis, purge_queues: None, model: str, queue: str
) -> None:
    before = queue_lengths(broker)
    complete.delay(prompt="hi", model=model)
    # send_task skips apply_async's validation; the router still picks the queue.
    app.send_task("agentjobs.complete", kwargs={"prompt": "hi", "model": model})
    after = queue_lengths(broker)
    assert after == {**before, queue: before[queue] + 2}

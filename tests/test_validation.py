"""Bad input raises RequestError at ``.delay()`` and nothing reaches a queue."""

from __future__ import annotations

import base64
import struct
import zlib
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


def png(width: int, height: int) -> str:
    """A real (black, greyscale) PNG, base64."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + b"\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
    return base64.b64encode(raw + chunk(b"IEND", b"")).decode()


def image(data: str, media_type: str = "image/png") -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def tool(name: str = "get_weather", **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    return {"name": name, "input_schema": schema, **extra}


TOOL_USE = {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Oslo"}}
ASKED = [
    user({"type": "text", "text": "Weather in Oslo?"}),
    {"role": "assistant", "content": [TOOL_USE]},
]
ANSWER = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "4 C, rain"}
CACHED = {"type": "text", "text": "part", "cache_control": {"type": "ephemeral"}}


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth):
        node["a"] = {}
        node = node["a"]
    return root


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
        "messages.0.content.0.text.text: text must not be empty",
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
    # -- tools and tool_choice
    (
        "tool name with a space",
        {**OK, "tools": [tool("get weather")]},
        "tools.0.custom.name: tool name 'get weather' does not match ^[a-zA-Z0-9_-]{1,128}$",
    ),
    ("tool name of 129 characters", {**OK, "tools": [tool("t" * 129)]}, "does not match"),
    (
        "two tools of one name",
        {**OK, "tools": [tool(), tool(description="again")]},
        "tool names must be unique: 'get_weather' is defined twice",
    ),
    (
        "a server tool named like a custom one",
        {
            **OK,
            "tools": [tool("web_search"), {"type": "web_search_20250305", "name": "web_search"}],
        },
        "'web_search' is defined twice",
    ),
    (
        "input_schema not an object schema",
        {**OK, "tools": [{"name": "t", "input_schema": {"type": "string"}}]},
        'tools.0.custom.input_schema: input_schema must be a JSON schema with "type": "object"',
    ),
    (
        "tool without input_schema",
        {**OK, "tools": [{"name": "t", "description": "d"}]},
        "tools.0.custom.input_schema: Field required",
    ),
    (
        "tool in OpenAI's shape",
        {**OK, "tools": [{**tool(), "parameters": {}}]},
        "tools.0.custom.parameters: Extra inputs are not permitted",
    ),
    (
        "tool_choice names an undefined tool",
        {**OK, "tools": [tool()], "tool_choice": {"type": "tool", "name": "get_time"}},
        "tool_choice names tool 'get_time', but no tool has that name",
    ),
    (
        "tool_choice of one tool without tools",
        {**OK, "tool_choice": {"type": "tool", "name": "get_time"}},
        "tool_choice names tool 'get_time'",
    ),
    (
        "tool_choice of an unknown type",
        {**OK, "tools": [tool()], "tool_choice": {"type": "required"}},
        "tool_choice: unknown type 'required'",
    ),
    # -- thinking
    (
        "thinking budget under 1024",
        {**OK, "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 1000}},
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
    ),
    (
        "thinking budget not under max_tokens",
        {**OK, "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 2000}},
        "thinking.budget_tokens 2000 must be less than max_tokens 2000",
    ),
    (
        "thinking budget over the default max_tokens",
        {**OK, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        "must be less than max_tokens 1024",
    ),
    (
        "thinking with temperature 0.5",
        {
            **OK,
            "max_tokens": 4000,
            "temperature": 0.5,
            "thinking": {"type": "enabled", "budget_tokens": 2000},
        },
        "temperature may only be 1 (or unset) when thinking is enabled",
    ),
    (
        "thinking with a forced tool",
        {
            **OK,
            "max_tokens": 4000,
            "tools": [tool()],
            "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 2000},
        },
        "thinking cannot be enabled with a tool_choice that forces tool use",
    ),
    (
        "thinking block without its signature",
        {
            "messages": [
                user({"type": "text", "text": "hi"}),
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "hmm"}]},
            ]
        },
        "messages.1.content.0.thinking.signature: Field required",
    ),
    # -- images and documents
    (
        "image of a type the API does not take",
        {"messages": [user(image(png(2, 2), "image/bmp"))]},
        "messages.0.content.0.image.source.base64.media_type: Input should be 'image/jpeg', "
        "'image/png', 'image/gif' or 'image/webp'",
    ),
    (
        "image over 5 MB",
        {"messages": [user(image("A" * (5 * 1024 * 1024 + 4)))]},
        "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: 5242884 bytes > "
        "5242880 bytes",
    ),
    (
        "PNG data sent as JPEG",
        {"messages": [user(image(png(2, 2), "image/jpeg"))]},
        "media_type is image/jpeg but the data is image/png",
    ),
    (
        "image data that is no image",
        {"messages": [user(image(base64.b64encode(b"not an image at all").decode()))]},
        "data is not a base64 JPEG, PNG, GIF or WebP image",
    ),
    (
        "image 9000 pixels wide",
        {"messages": [user(image(png(9000, 1)))]},
        "image is 9000x1 pixels: a side exceeds 8000",
    ),
    (
        "image by URL without the url",
        {"messages": [user({"type": "image", "source": {"type": "url"}})]},
        "messages.0.content.0.image.source.url.url: Field required",
    ),
    (
        "document declared a Word file",
        {
            "messages": [
                user(
                    {
                        "type": "document",
                        "source": {
                            "type": "base64",
                            "media_type": "application/msword",
                            "data": "",
                        },
                    }
                )
            ]
        },
        "source.base64.media_type: Input should be 'application/pdf'",
    ),
    # -- tool use and tool results
    (
        "no tool_result after a tool_use",
        {"messages": [*ASKED, user({"type": "text", "text": "and?"})]},
        "messages.2: must start with one tool_result for each tool_use of messages.1 (toolu_01)",
    ),
    (
        "user text after a tool_use",
        {"messages": [*ASKED, {"role": "user", "content": "and?"}]},
        "missing toolu_01",
    ),
    (
        "tool_result after text",
        {"messages": [*ASKED, user({"type": "text", "text": "here:"}, ANSWER)]},
        "must start with one tool_result for each tool_use of messages.1 (toolu_01); toolu_01 "
        "after other content",
    ),
    (
        "tool_result for another id",
        {"messages": [*ASKED, user({**ANSWER, "tool_use_id": "toolu_02"})]},
        "messages.2: tool_result for 'toolu_02' answers no tool_use of the message just before",
    ),
    (
        "tool_result with nothing asked",
        {"messages": [user(ANSWER)]},
        "messages.0: tool_result for 'toolu_01' answers no tool_use",
    ),
    (
        "tool_result is_error not a bool",
        {"messages": [*ASKED, user({**ANSWER, "is_error": "yes"})]},
        "messages.2.content.0.tool_result.is_error: Input should be a valid boolean",
    ),
    (
        "tool_use input not an object",
        {
            "messages": [
                user({"type": "text", "text": "hi"}),
                {"role": "assistant", "content": [{**TOOL_USE, "input": [1]}]},
            ]
        },
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary",
    ),
    (
        "tool_use id with a space",
        {
            "messages": [
                user({"type": "text", "text": "hi"}),
                {"role": "assistant", "content": [{**TOOL_USE, "id": "toolu 1"}]},
            ]
        },
        "messages.1.content.0.tool_use.id: id must be letters, digits, _ or -",
    ),
    # -- prompt caching
    (
        "five cache breakpoints",
        {
            "system": [CACHED, CACHED],
            "tools": [tool(cache_control={"type": "ephemeral"})],
            "messages": [
                user(CACHED, {**CACHED, "cache_control": {"type": "ephemeral", "ttl": "1h"}})
            ],
        },
        "5 cache_control breakpoints (system, tools, messages and the top-level one together)",
    ),
    (
        "four breakpoints and the top-level one",
        {
            "messages": [user(CACHED, CACHED, CACHED, CACHED)],
            "cache_control": {"type": "ephemeral"},
        },
        "5 cache_control breakpoints",
    ),
    (
        "cache_control ttl of 10 minutes",
        {"messages": [user({**CACHED, "cache_control": {"type": "ephemeral", "ttl": "10m"}})]},
        "cache_control.ttl: Input should be '5m' or '1h'",
    ),
    # -- other parameters
    (
        "metadata nested 3,000 deep",
        {**OK, "metadata": nested(3000)},
        "metadata: nested more than 128 levels deep",
    ),
    (
        "tool input nested 3,000 deep",
        {
            "messages": [
                user({"type": "text", "text": "hi"}),
                {"role": "assistant", "content": [{**TOOL_USE, "input": nested(3000)}]},
            ]
        },
        "messages: nested more than 128 levels deep",
    ),
    ("empty stop sequence", {**OK, "stop_sequences": [""]}, "each stop sequence must contain"),
    ("blank stop sequence", {**OK, "stop_sequences": ["END", " "]}, "each stop sequence must"),
    (
        "lone surrogate in the prompt",
        {"prompt": "caf\ud800e"},
        "prompt: a lone surrogate '\\ud800' at character 3 is not valid Unicode",
    ),
    (
        "lone surrogate in a tool result",
        {"messages": [*ASKED, user({**ANSWER, "content": [{"type": "text", "text": "x\udfff"}]})]},
        "messages.2.content.0.content.0.text: a lone surrogate '\\udfff'",
    ),
    (
        "lone surrogate in a tool description",
        {**OK, "tools": [tool(description="\ud83d")]},
        "tools.0.description: a lone surrogate",
    ),
    ("top_p above 1", {**OK, "top_p": 1.5}, "top_p: Input should be less than or equal to 1"),
    (
        "temperature and top_p together",
        {**OK, "temperature": 0.5, "top_p": 0.9},
        "give temperature or top_p, not both",
    ),
    ("top_k negative", {**OK, "top_k": -1}, "top_k: Input should be greater than or equal to 0"),
    (
        "service_tier unknown",
        {**OK, "service_tier": "priority"},
        "service_tier: Input should be 'auto' or 'standard_only'",
    ),
    (
        "output_config effort unknown",
        {**OK, "output_config": {"effort": "extreme"}},
        "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
    ),
    (
        "output format without its schema",
        {**OK, "output_config": {"format": {"type": "json_schema"}}},
        "output_config.format.schema: Field required",
    ),
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

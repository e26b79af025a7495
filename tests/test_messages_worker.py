"""The whole request surface through a real worker, the SDK and HTTP to the simulator:
what goes on the wire is what the caller gave, and an answer's content goes back as is."""

from __future__ import annotations

import base64
import copy
import json
import struct
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs import catalog, complete
from agentjobs.api import client


def png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


@pytest.fixture
def wire(worker: Any, fresh_sim: Any, state_redis: redis.Redis) -> Iterator[list[dict[str, Any]]]:
    """The JSON bodies of the worker's Messages API calls, as its HTTP client sent them
    (an event hook observes the real request; nothing is replaced)."""
    bodies: list[dict[str, Any]] = []

    def record(request: Any) -> None:
        if request.url.path == "/v1/messages":
            bodies.append(json.loads(request.content))

    http = client.get_client()._client  # the process's client, which the worker uses
    http.event_hooks["request"].append(record)
    yield bodies
    http.event_hooks["request"].remove(record)


TOOLS = [
    {
        "name": "get_weather",
        "description": "The weather in a city, now.",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
        "cache_control": {"type": "ephemeral"},
    },
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 2},
]
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}
IMAGE["source"]["data"] = png(64, 48)
DOCUMENT = {
    "type": "document",
    "source": {"type": "text", "media_type": "text/plain", "data": "Oslo: rain all week."},
    "title": "Forecast",
    "citations": {"enabled": True},
}
MESSAGES = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Weather in Oslo? Compare the photo."},
            IMAGE,
            DOCUMENT,
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "Let me check."},
            {
                "type": "tool_use",
                "id": "toolu_01A",
                "name": "get_weather",
                "input": {"city": "Oslo"},
            },
        ],
    },
    {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01A",
                "content": [{"type": "text", "text": "4 C, rain"}, IMAGE],
                "is_error": False,
            }
        ],
    },
]
OPTIONS = {
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    # Thinking off: with it on, the API (and the simulator) wants the assistant turn above to
    # start with the signed thinking block of the answer that asked for the tool.
    "thinking": {"type": "disabled"},
    "output_config": {"effort": "medium"},
    "service_tier": "auto",
    "top_p": 0.9,  # temperature and top_p: one or the other
    "top_k": 40,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "u-1", "ticket": 7},
}


def test_a_tool_loop_reaches_the_api_as_given(wire: list[dict[str, Any]]) -> None:
    messages = copy.deepcopy(MESSAGES)
    first = complete.delay(
        messages=messages, tools=TOOLS, model="sonnet", max_tokens=512, **OPTIONS
    ).get(timeout=30)
    assert first["stop_reason"] == "end_turn" and first["text"]
    assert first["usage"]["input_tokens"] > 0
    (body,) = wire
    expected = {
        "model": catalog.resolve("sonnet").id,
        "max_tokens": 512,
        "messages": MESSAGES,
        "tools": TOOLS,
        **OPTIONS,
        "metadata": {"user_id": "u-1"},  # the rest of metadata is agentjobs' own
    }
    assert {k: body[k] for k in expected} == expected
    assert set(body) - set(expected) <= {"stream"}

    # the next step: the answer's content appended unchanged, then the user's turn
    following = [*MESSAGES, {"role": "assistant", "content": first["content"]}]
    following.append({"role": "user", "content": "And tomorrow?"})
    second = complete.delay(
        messages=copy.deepcopy(following), tools=TOOLS, model="sonnet", max_tokens=512
    ).get(timeout=30)
    assert second["stop_reason"] == "end_turn"
    assert wire[1]["messages"] == following
    assert wire[1]["messages"][3]["content"] == first["content"]

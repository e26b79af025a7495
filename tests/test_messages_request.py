"""What the API accepts, agentjobs accepts, and sends exactly as given (api_params)."""

from __future__ import annotations

import base64
import copy
import struct
import zlib
from typing import Any

import pytest

from agentjobs.api.client import sdk_kwargs
from agentjobs.messages.request import parse_request


def png(width: int = 4, height: int = 3) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


PDF = base64.b64encode(b"%PDF-1.7\n<< /Type /Page >>\n%%EOF").decode()
HI = {"role": "user", "content": "hi"}
CITATION = {
    "type": "char_location",
    "cited_text": "grass is green",
    "document_index": 0,
    "document_title": None,
    "start_char_index": 4,
    "end_char_index": 18,
}
IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png()}}

#: (name, blocks of a user message) the API takes; each must be sent as given.
USER_BLOCKS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "text with a 1h breakpoint",
        [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
    ),
    (
        "text with citations",
        [{"type": "text", "text": "The grass is green.", "citations": [CITATION]}],
    ),
    ("text with null citations", [{"type": "text", "text": "hi", "citations": None}]),
    ("image, base64", [IMAGE]),
    (
        "image, URL",
        [{"type": "image", "source": {"type": "url", "url": "https://example.com/a.jpg"}}],
    ),
    ("image, file id", [{"type": "image", "source": {"type": "file", "file_id": "file_011"}}]),
    (
        "image with transformations",
        [
            {
                **IMAGE,
                "transformations": {"oversized_image": "error"},
                "cache_control": {"type": "ephemeral"},
            }
        ],
    ),
    (
        "PDF, base64, with citations",
        [
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                "title": "Contract",
                "context": "signed 2025",
                "citations": {"enabled": True},
            },
            {"type": "text", "text": "Summarise it."},
        ],
    ),
    (
        "PDF, URL",
        [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}],
    ),
    (
        "document, file id",
        [{"type": "document", "source": {"type": "file", "file_id": "file_012"}}],
    ),
    (
        "plain text document",
        [
            {
                "type": "document",
                "source": {
                    "type": "text",
                    "media_type": "text/plain",
                    "data": "The grass is green.",
                },
            }
        ],
    ),
    (
        "content document",
        [
            {
                "type": "document",
                "source": {
                    "type": "content",
                    "content": [{"type": "text", "text": "part one"}, IMAGE],
                },
                "citations": {"enabled": False},
            }
        ],
    ),
    (
        "content document, a string",
        [{"type": "document", "source": {"type": "content", "content": "all of it"}}],
    ),
    (
        "search result",
        [
            {
                "type": "search_result",
                "source": "https://example.com/kb/1",
                "title": "Refunds",
                "content": [{"type": "text", "text": "Refunds take 5 days."}],
                "citations": {"enabled": True},
                "cache_control": {"type": "ephemeral"},
            }
        ],
    ),
    ("container upload", [{"type": "container_upload", "file_id": "file_013"}]),
]


@pytest.mark.parametrize("content", [b[1] for b in USER_BLOCKS], ids=[b[0] for b in USER_BLOCKS])
def test_user_blocks_are_accepted_and_sent_as_given(content: list[dict[str, Any]]) -> None:
    messages = [{"role": "user", "content": content}]
    given = copy.deepcopy(messages)
    req = parse_request({"messages": messages, "model": "sonnet"})
    assert req.api_params()["messages"] == given
    # and they survive the queue: the worker's request sends the same
    assert parse_request(req.task_kwargs()).api_params() == req.api_params()


TOOL_USE = {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}}
TOOL_USE_2 = {**TOOL_USE, "id": "toolu_01B", "input": {"city": "Bergen"}}
THINKING = {
    "type": "thinking",
    "thinking": "Two cities: two calls.",
    "signature": "EqQBCgIYAhIM1gbcDa9GJwZA",
}
SERVER = [
    {
        "type": "server_tool_use",
        "id": "srvtoolu_01",
        "name": "web_search",
        "input": {"query": "weather Oslo"},
        "caller": {"type": "direct"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://example.com",
                "title": "Oslo",
                "encrypted_content": "Eo8B",
                "page_age": None,
            }
        ],
        "a_field_the_api_adds_later": {"kept": True},
    },
]

#: (name, [user, assistant, user, ...]) conversations the API takes.
CONVERSATIONS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "tool use and its result",
        [
            HI,
            {"role": "assistant", "content": [TOOL_USE]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "4 C, rain"}
                ],
            },
        ],
    ),
    (
        "parallel tool uses answered in any order, then text",
        [
            HI,
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "Checking both."}, TOOL_USE, TOOL_USE_2],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01B",
                        "content": [{"type": "text", "text": "timeout"}],
                        "is_error": True,
                    },
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01A",
                        "content": [{"type": "text", "text": "4 C"}, IMAGE],
                    },
                    {"type": "text", "text": "Bergen failed; retry?"},
                ],
            },
        ],
    ),
    (
        "tool result without content, with search results and a document",
        [
            HI,
            {"role": "assistant", "content": [TOOL_USE, TOOL_USE_2]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01A"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_01B",
                        "cache_control": {"type": "ephemeral"},
                        "content": [
                            USER_BLOCKS[13][1][0],
                            {
                                "type": "document",
                                "source": {"type": "text", "media_type": "text/plain", "data": "d"},
                            },
                            {"type": "tool_reference", "tool_name": "get_weather"},
                        ],
                    },
                ],
            },
        ],
    ),
    (
        "thinking, redacted thinking and a tool use",
        [
            HI,
            {
                "role": "assistant",
                "content": [
                    THINKING,
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
                    TOOL_USE,
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_01A", "content": "4 C"}],
            },
        ],
    ),
    ("server tool blocks, passed through", [HI, {"role": "assistant", "content": SERVER}, HI]),
    (
        "a tool use in the last message (prefill)",
        [HI, {"role": "assistant", "content": [TOOL_USE]}],
    ),
    (
        "tool_use with a caller and a toolset",
        [
            HI,
            {
                "role": "assistant",
                "content": [{**TOOL_USE, "caller": {"type": "direct"}, "toolset_name": None}],
            },
        ],
    ),
]


@pytest.mark.parametrize(
    "messages", [c[1] for c in CONVERSATIONS], ids=[c[0] for c in CONVERSATIONS]
)
def test_conversations_are_accepted_and_sent_as_given(messages: list[dict[str, Any]]) -> None:
    given = copy.deepcopy(messages)
    req = parse_request({"messages": messages, "model": "sonnet", "max_tokens": 4000})
    assert req.api_params()["messages"] == given
    assert parse_request(req.task_kwargs()).api_params() == req.api_params()


CUSTOM = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
    "input_examples": [{"city": "Oslo"}],
    "cache_control": {"type": "ephemeral", "ttl": "1h"},
}
WEB_SEARCH = {
    "type": "web_search_20250305",
    "name": "web_search",
    "max_uses": 3,
    "allowed_domains": ["example.com"],
    "user_location": {"type": "approximate", "city": "Oslo"},
}


@pytest.mark.parametrize(
    "options",
    [
        {
            "tools": [CUSTOM, WEB_SEARCH],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        },
        {
            "tools": [{**CUSTOM, "type": "custom"}],
            "tool_choice": {"type": "tool", "name": "get_weather"},
        },
        {"tools": [CUSTOM], "tool_choice": {"type": "any"}},
        {"tools": [CUSTOM], "tool_choice": {"type": "none"}},
        {
            "tools": [
                {"type": "bash_20250124", "name": "bash"},
                {"type": "browser_toolset_20260801"},
            ]
        },
        {
            "thinking": {"type": "enabled", "budget_tokens": 1024, "display": "omitted"},
            "top_p": 0.95,
        },
        {"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}},
        {"thinking": {"type": "disabled"}, "top_k": 40, "temperature": 0},
        {"top_k": 40, "top_p": 0.5},
        {
            "output_config": {
                "format": {
                    "type": "json_schema",
                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                }
            }
        },
        {"cache_control": {"type": "ephemeral"}, "service_tier": "standard_only"},
        {"cache_control": {"type": "ephemeral", "ttl": "1h"}, "service_tier": "auto"},
    ],
    ids=[
        "custom+server tools, auto",
        "tool choice of one",
        "any",
        "none",
        "server tools and a toolset",
        "thinking enabled",
        "adaptive, effort",
        "disabled, temperature and top_k",
        "top_p and top_k",
        "json schema output",
        "top-level cache, tier",
        "top-level 1h cache",
    ],
)
def test_request_options_are_sent_as_given(options: dict[str, Any]) -> None:
    given = copy.deepcopy(options)
    req = parse_request({"prompt": "hi", "model": "sonnet", "max_tokens": 2048, **options})
    params = req.api_params()
    assert {k: params[k] for k in given} == given
    assert parse_request(req.task_kwargs()).api_params() == params


def test_fields_the_sdk_has_no_argument_for_travel_in_extra_body() -> None:
    req = parse_request(
        {
            "prompt": "hi",
            "tools": [CUSTOM],
            "top_k": 5,
            "temperature": 0.2,
            "cache_control": {"type": "ephemeral"},
            "output_config": {"effort": "low"},
        }
    )
    kwargs = sdk_kwargs(req.api_params())
    body = {
        **{k: v for k, v in kwargs.items() if k != "extra_body"},
        **kwargs.get("extra_body", {}),
    }
    assert body == req.api_params()  # nothing lost, whichever way each field goes
    assert kwargs["tools"] == [CUSTOM]


def test_cache_breakpoints_are_counted_everywhere() -> None:
    mark = {"type": "ephemeral"}
    req = parse_request(
        {
            "system": [
                {"type": "text", "text": "a"},
                {"type": "text", "text": "b", "cache_control": mark},
            ],
            "prompt_cache": "1h",  # replaces the last system block's mark
            "tools": [{**CUSTOM, "cache_control": mark}],
            "messages": [
                HI,
                {"role": "assistant", "content": [TOOL_USE]},
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "toolu_01A",
                            "content": [
                                {
                                    "type": "text",
                                    "text": "deep",
                                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                                }
                            ],
                        }
                    ],
                },
            ],
        }
    )
    assert sorted(req.cache_ttls()) == ["1h", "1h", "5m"]
    assert parse_request({"prompt": "hi", "cache_control": mark}).cache_ttls() == ["5m"]
    assert parse_request({"prompt": "hi", "prompt_cache": "1h"}).cache_ttls() == []  # no system

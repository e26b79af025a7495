"""A result's ``content`` holds every block as the API shaped it, and goes back as is."""

from __future__ import annotations

import copy
from typing import Any

import anthropic

from agentjobs.api import client
from agentjobs.api.send import build_result
from agentjobs.call import Call
from agentjobs.messages.request import parse_request
from agentjobs.messages.result import Usage

#: An answer as the API sends it: thinking, cited text, a server tool's call and result,
#: two tool uses. Nulls included where the API sends them.
CONTENT: list[dict[str, Any]] = [
    {"type": "thinking", "thinking": "Check both cities.", "signature": "EqQBCgIYAhIM1gbcDa9GJwZA"},
    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix"},
    {
        "type": "text",
        "text": "The report says it rains.",
        "citations": [
            {
                "type": "char_location",
                "cited_text": "it rains",
                "document_index": 0,
                "document_title": None,  # required back, null or not
                "start_char_index": 0,
                "end_char_index": 8,
            }
        ],
    },
    {
        "type": "server_tool_use",
        "id": "srvtoolu_01",
        "name": "web_search",
        "input": {"query": "Oslo weather"},
    },
    {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_01",
        "content": [
            {
                "type": "web_search_result",
                "url": "https://example.com/oslo",
                "title": "Oslo",
                "encrypted_content": "Eo8BCioIAhgB",
                "page_age": None,
            }
        ],
    },
    {"type": "text", "text": "Checking the forecast.", "citations": None},
    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Oslo"}},
    {
        "type": "tool_use",
        "id": "toolu_01B",
        "name": "get_weather",
        "input": {"city": "Bergen", "days": [1, 2]},
    },
]


def answer(content: list[dict[str, Any]]) -> anthropic.types.Message:
    """The SDK's own reading of the API's JSON answer."""
    return anthropic.types.Message.model_validate(
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": copy.deepcopy(content),
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 50, "output_tokens": 80},
        }
    )


def result_content(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    call = Call({"prompt": "Weather in Oslo and Bergen?", "model": "sonnet"})
    raw = client.RawResponse(answer(content), client.httpx.Headers(), 5.0, "req_1", Usage(), 0.0)
    result = build_result(call, raw)
    assert result.stop_reason == "tool_use"
    assert result.text == "The report says it rains.Checking the forecast."
    return result.content


def test_content_is_every_block_as_the_api_shaped_it() -> None:
    assert result_content(CONTENT) == CONTENT


def test_content_goes_back_into_the_next_request_unchanged() -> None:
    content = result_content(CONTENT)
    tool_results = [
        {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "4 C, rain"},
        {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "9 C", "is_error": False},
    ]
    messages = [
        {"role": "user", "content": "Weather in Oslo and Bergen?"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": tool_results},
    ]
    req = parse_request({"messages": messages, "model": "sonnet", "max_tokens": 2048})
    sent = req.api_params()["messages"]
    assert sent[1] == {"role": "assistant", "content": CONTENT}
    # through the queue as well
    assert parse_request(req.task_kwargs()).api_params()["messages"][1]["content"] == CONTENT

"""``prompt_cache``: breakpoints on the tool definitions and the conversation so far, so
an agent that resends its whole transcript every step reads it from the cache; never
more than the API's 4 breakpoints, the caller's own counted first. Against the
simulator's prompt cache over HTTP, with the real SDK."""

from __future__ import annotations

from typing import Any

import pytest

from agentjobs.api import client
from agentjobs.messages.request import parse_request

WORDS = " ".join(f"word{i}" for i in range(1500))
TOOLS = [
    {
        "name": f"tool_{i}",
        "description": f"Tool {i}: {WORDS[:2000]}",
        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
    for i in range(3)
]


def _marks(params: dict[str, Any]) -> list[str]:
    """Where the request's breakpoints are: tools.N, system.N, messages.N.M."""
    out = [f"tools.{i}" for i, t in enumerate(params.get("tools") or ()) if "cache_control" in t]
    system = params.get("system")
    if isinstance(system, list):
        out += [f"system.{i}" for i, b in enumerate(system) if "cache_control" in b]
    for i, m in enumerate(params["messages"]):
        if isinstance(m["content"], list):
            out += [f"messages.{i}.{j}" for j, b in enumerate(m["content"]) if "cache_control" in b]
    return out


def test_an_agent_s_transcript_is_read_from_the_cache_at_every_step(fresh_sim: Any) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"Look into this: {WORDS}"}]
    usages = []
    for step in range(3):
        req = parse_request(
            {
                "messages": messages,
                "tools": TOOLS,
                "model": "sonnet",
                "max_tokens": 64,
                "prompt_cache": "5m",
            }
        )
        params = req.api_params()
        raw = client.create_message(params)
        usages.append(raw.usage)
        messages = [
            *messages,
            {"role": "assistant", "content": [b.to_dict(mode="json") for b in raw.message.content]},
            {"role": "user", "content": f"Step {step + 2}: go on."},
        ]
    first, second, third = usages
    assert first.cache_read_input_tokens == 0
    # The tools are written; the single question is not (it is not resent as it is).
    assert first.cache_creation_input_tokens > 1_500 and first.input_tokens > 3_000
    # Each later step reads everything the step before it sent, and writes only the rest.
    assert second.cache_read_input_tokens == first.cache_creation_input_tokens
    assert third.cache_read_input_tokens == (
        second.cache_read_input_tokens + second.cache_creation_input_tokens
    )
    assert third.input_tokens < 50  # nothing but what the cache boundaries leave out


def test_the_marks_stay_within_four_counting_the_caller_s_own() -> None:
    own = {"type": "ephemeral"}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": own}]},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": [{"type": "text", "text": "c", "cache_control": own}]},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    params = parse_request(
        {"messages": messages, "system": "sys", "tools": TOOLS, "prompt_cache": "1h"}
    ).api_params()
    # two of the caller's, the system's, then the tools': the conversation gets none more
    assert _marks(params) == ["tools.2", "system.0", "messages.0.0", "messages.2.0"]
    assert params["tools"][2]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


@pytest.mark.parametrize("given", [None, "5m"])
def test_without_prompt_cache_nothing_is_marked_but_what_the_caller_marked(
    given: str | None,
) -> None:
    kwargs: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    if given:
        kwargs["prompt_cache"] = given
    params = parse_request(kwargs).api_params()
    assert _marks(params) == (["tools.2"] if given else [])  # one question: not resent

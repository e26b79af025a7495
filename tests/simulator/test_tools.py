"""Answers beyond text, through the SDK: tool calls and tool loops, thinking with
signatures, JSON-schema output, and the stop reasons."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import jsonschema
import pytest

from .conftest import user

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 2},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
}
CLOCK = {
    "name": "get_time",
    "input_schema": {
        "type": "object",
        "properties": {"zone": {"type": "string", "format": "uuid"}},
        "required": ["zone"],
    },
}
SCHEMAS = {t["name"]: t["input_schema"] for t in (WEATHER, CLOCK)}
THINK = {"type": "enabled", "budget_tokens": 2048}


def run_loop(
    client: anthropic.Anthropic, prompt: str, tools: list[Any], **kw: Any
) -> list[anthropic.types.Message]:
    """A tool loop as an agent runs it: each answer's content appended unchanged, a
    tool_result per tool_use, until the model stops asking."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": prompt}]
    answers = []
    for _ in range(10):
        msg = client.messages.create(
            model="sonnet", max_tokens=4096, tools=tools, messages=messages, **kw
        )
        answers.append(msg)
        if msg.stop_reason != "tool_use":
            return answers
        messages.append({"role": "assistant", "content": [b.model_dump() for b in msg.content]})
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": b.id, "content": f"result of {b.name}"}
                    for b in msg.content
                    if b.type == "tool_use"
                ],
            }
        )
    raise AssertionError("the loop did not end")


def test_three_round_tool_loop_from_content_only(client: anthropic.Anthropic) -> None:
    answers = run_loop(client, "Plan my week: [[sim:tool_rounds=3]]", [WEATHER, CLOCK])
    assert [a.stop_reason for a in answers] == ["tool_use"] * 3 + ["end_turn"]
    called = []
    for a in answers[:3]:
        assert a.content[0].type == "text"  # "auto": a sentence before the call
        uses = [b for b in a.content if b.type == "tool_use"]
        assert len(uses) == 1 and uses[0].id.startswith("toolu_")
        jsonschema.validate(uses[0].input, SCHEMAS[uses[0].name])
        called.append(uses[0].name)
    assert called == ["get_weather", "get_time", "get_weather"]  # the tools in turn
    assert [b.type for b in answers[3].content] == ["text"]
    # The transcript grows each round, and so does its input.
    inputs = [a.usage.input_tokens for a in answers]
    assert inputs == sorted(inputs) and len(set(inputs)) == 4


def test_naming_a_tool_calls_it_once(client: anthropic.Anthropic) -> None:
    answers = run_loop(client, "What does get_time say?", [WEATHER, CLOCK])
    assert [a.stop_reason for a in answers] == ["tool_use", "end_turn"]
    assert [b.name for b in answers[0].content if b.type == "tool_use"] == ["get_time"]
    # Not named, no directive: a plain answer.
    plain = client.messages.create(
        model="sonnet", max_tokens=500, tools=[WEATHER], messages=user("Hello")
    )
    assert plain.stop_reason == "end_turn" and [b.type for b in plain.content] == ["text"]


def test_parallel_calls_and_their_results(client: anthropic.Anthropic) -> None:
    answers = run_loop(client, "Both, please [[sim:parallel=3]] get_weather", [WEATHER])
    uses = [b for b in answers[0].content if b.type == "tool_use"]
    assert len(uses) == 3 and len({u.id for u in uses}) == 3
    assert answers[-1].stop_reason == "end_turn"
    single = client.messages.create(
        model="sonnet",
        max_tokens=500,
        tools=[WEATHER],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=user("get_weather [[sim:parallel=3]]"),
    )
    assert len([b for b in single.content if b.type == "tool_use"]) == 1


def test_forced_tool_choice(client: anthropic.Anthropic) -> None:
    forced = client.messages.create(
        model="sonnet",
        max_tokens=500,
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "tool", "name": "get_time"},
        messages=user("Hello"),
    )
    # Forced: no sentence first (the API prefills the turn), the named tool.
    assert [(b.type, getattr(b, "name", None)) for b in forced.content] == [
        ("tool_use", "get_time")
    ]
    assert forced.stop_reason == "tool_use"
    anyone = client.messages.create(
        model="sonnet",
        max_tokens=500,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=user("Hello"),
    )
    assert anyone.stop_reason == "tool_use"
    never = client.messages.create(
        model="sonnet",
        max_tokens=500,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=user("get_weather [[sim:tool_rounds=2]]"),
    )
    assert never.stop_reason == "end_turn"


def test_max_tokens_inside_a_tool_call(client: anthropic.Anthropic) -> None:
    full = client.messages.create(
        model="sonnet",
        max_tokens=500,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=user("x"),
    )
    needed = full.usage.output_tokens
    cut = client.messages.create(
        model="sonnet",
        max_tokens=needed - 2,
        tools=[WEATHER],
        tool_choice={"type": "any"},
        messages=user("x"),
    )
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == needed - 2
    (block,) = cut.content
    assert block.type == "tool_use"
    # The leading properties that fit whole: an incomplete call the client must not run.
    full_input = full.content[0].input  # type: ignore[union-attr]
    keys = list(block.input)
    assert 0 < len(keys) < len(full_input) and keys == list(full_input)[: len(keys)]


def test_thinking_signatures_survive_a_tool_loop(client: anthropic.Anthropic) -> None:
    answers = run_loop(client, "Check twice [[sim:tool_rounds=2]]", [WEATHER], thinking=THINK)
    assert [a.stop_reason for a in answers] == ["tool_use", "tool_use", "end_turn"]
    for a in answers:
        first = a.content[0]
        assert first.type == "thinking" and first.thinking and first.signature
    # Thinking tokens are output tokens.
    text_only = client.messages.create(
        model="sonnet", max_tokens=4096, messages=user("Check twice [[sim:tool_rounds=2]]")
    )
    assert answers[-1].usage.output_tokens > 0 and text_only.usage.output_tokens > 0


def _thinking_round(client: anthropic.Anthropic) -> list[dict[str, Any]]:
    msg = client.messages.create(
        model="sonnet",
        max_tokens=4096,
        tools=[WEATHER],
        thinking=THINK,
        messages=user("get_weather for Oslo"),
    )
    assert msg.stop_reason == "tool_use"
    tool = next(b for b in msg.content if b.type == "tool_use")
    return [
        {"role": "user", "content": "get_weather for Oslo"},
        {"role": "assistant", "content": [b.model_dump() for b in msg.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "x"}],
        },
    ]


def test_tampered_or_missing_thinking_is_refused(client: anthropic.Anthropic) -> None:
    messages = _thinking_round(client)
    kw: dict[str, Any] = {"model": "sonnet", "max_tokens": 4096, "tools": [WEATHER]}
    assert client.messages.create(messages=messages, thinking=THINK, **kw).stop_reason == "end_turn"
    blocks = messages[1]["content"]
    tampered = [{**blocks[0], "thinking": blocks[0]["thinking"] + " (edited)"}, *blocks[1:]]
    made_up = [{**blocks[0], "signature": "Sim" + "A" * 43}, *blocks[1:]]
    for changed in (tampered, made_up):
        bad = [messages[0], {"role": "assistant", "content": changed}, messages[2]]
        with pytest.raises(
            anthropic.BadRequestError, match="Invalid `signature` in `thinking` block"
        ):
            client.messages.create(messages=bad, thinking=THINK, **kw)
    missing = [messages[0], {"role": "assistant", "content": blocks[1:]}, messages[2]]
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        client.messages.create(messages=missing, thinking=THINK, **kw)
    # With thinking off, the API does not look at earlier thinking at all.
    assert client.messages.create(messages=missing, **kw).stop_reason == "end_turn"


def test_thinking_budget_and_display(client: anthropic.Anthropic) -> None:
    long = client.messages.create(
        model="sonnet",
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("deep [[sim:thinking_tokens=5000]] [[sim:output_tokens=10]]"),
    )
    think, _ = long.content
    assert think.type == "thinking" and len(think.thinking) == 4 * 1024  # the budget caps it
    assert long.usage.output_tokens == 1024 + 10
    hidden = client.messages.create(
        model="sonnet",
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024, "display": "omitted"},
        messages=user("deep [[sim:thinking_tokens=300]] [[sim:output_tokens=10]]"),
    )
    assert hidden.content[0].type == "thinking" and hidden.content[0].thinking == ""
    assert hidden.usage.output_tokens == 310  # thought, billed, not shown


SHAPE = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "minItems": 2},
        "author": {"$ref": "#/$defs/person"},
        "note": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
    },
    "required": ["title", "score", "tags", "author"],
    "additionalProperties": False,
    "$defs": {
        "person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 18}},
            "required": ["name", "age"],
            "additionalProperties": False,
        }
    },
}


@pytest.mark.parametrize("prompt", ["Rate this.", "Another one.", "A third."])
def test_json_schema_output_validates(client: anthropic.Anthropic, prompt: str) -> None:
    msg = client.messages.create(
        model="haiku",
        max_tokens=1000,
        output_config={"format": {"type": "json_schema", "schema": SHAPE}},
        messages=user(prompt),
    )
    (block,) = msg.content
    jsonschema.validate(json.loads(block.text), SHAPE)  # type: ignore[union-attr]
    assert msg.stop_reason == "end_turn"


@pytest.mark.parametrize("reason", ["pause_turn", "refusal", "model_context_window_exceeded"])
def test_forced_stop_reasons(client: anthropic.Anthropic, reason: str) -> None:
    msg = client.messages.create(
        model="haiku",
        max_tokens=1000,
        messages=user(f"[[sim:stop_reason={reason}]] [[sim:output_tokens=100]]"),
    )
    assert msg.stop_reason == reason and msg.usage.output_tokens == 50  # cut short
    if reason == "refusal":
        assert msg.stop_details is not None and msg.stop_details.type == "refusal"
    else:
        assert msg.stop_details is None


def test_context_window_ends_the_answer(client: anthropic.Anthropic) -> None:
    # ~199,000 input tokens: 1,000 left of the 200,000 window, max_tokens 5,000.
    msg = client.messages.create(
        model="haiku",
        max_tokens=5000,
        messages=user("word " * 159_180 + "[[sim:output_tokens=4000]]"),
    )
    left = 200_000 - msg.usage.input_tokens
    assert 0 < left < 5000
    assert msg.stop_reason == "model_context_window_exceeded"
    assert msg.usage.output_tokens == left

"""What the answer says: its content blocks, output tokens and stop reason.

Everything derives from the request hash (and the directives), so a retried request
gets the same answer. In order: thinking (when enabled), then either tool calls (see
``tooluse``) or text: JSON valid against ``output_config.format``'s schema, or words.
The output budget is ``max_tokens``, or what the context window leaves if that is
less; a block the budget ends in is cut (a tool call keeps the properties that fit)
and the stop reason says which limit it was. ``max_tokens: 0`` answers nothing (it
only fills the prompt cache).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentjobs.simulator import schemagen, textgen, thinking, tokens, tooluse
from agentjobs.simulator.apierror import invalid
from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.state import Call
from agentjobs.simulator.validation import Parsed

#: Stop reasons a ``[[sim:stop_reason=...]]`` directive can force, the answer cut short.
FORCED_STOPS = ("pause_turn", "refusal", "model_context_window_exceeded")
_PREAMBLE_TOKENS = 12  # "I'll look that up." before tool calls, when not forced
_THINKING_SALT = 0x5EED


@dataclass
class Reply:
    """An answer before billing: the Message's content and stop fields."""

    content: list[dict[str, Any]] = field(default_factory=list)
    #: Output tokens of each block, in order: how a stream paces them.
    tokens: list[int] = field(default_factory=list)
    stop_reason: str = "end_turn"
    stop_sequence: str | None = None
    stop_details: dict[str, Any] | None = None

    @property
    def output_tokens(self) -> int:
        return sum(self.tokens)

    def add(self, block: dict[str, Any], n: int) -> None:
        self.content.append(block)
        self.tokens.append(n)


def int_directive(directives: dict[str, str], key: str) -> int | None:
    value = directives.get(key)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise invalid(f"[[sim:{key}={value}]]: expected a number") from None


def generate(call: Call, parsed: Parsed, directives: dict[str, str], config: SimConfig) -> Reply:
    """The answer to a valid request."""
    assert call.digest is not None
    seed = int(call.digest[:15], 16)
    forced = directives.get("stop_reason")
    if forced is not None and forced not in FORCED_STOPS:
        raise invalid(f"[[sim:stop_reason={forced}]]: one of {', '.join(FORCED_STOPS)}")
    window = parsed.model.context_window - parsed.input_tokens
    limit = min(parsed.max_tokens, window)
    cut = "model_context_window_exceeded" if window < parsed.max_tokens else "max_tokens"
    reply = Reply()
    if parsed.max_tokens == 0:
        reply.stop_reason = "max_tokens"
        return reply
    if parsed.thinking is not None:
        n = thinking.wanted_tokens(
            parsed.thinking, seed >> 4, int_directive(directives, "thinking_tokens")
        )
        n = min(n, limit)
        text = textgen.text_of(seed ^ _THINKING_SALT, n)
        shown = text if parsed.thinking.display == "summarized" else ""
        reply.add({"type": "thinking", "thinking": shown, "signature": thinking.sign(shown)}, n)
        if n >= limit:
            reply.stop_reason = cut
            return reply
    wanted = textgen.output_length(
        seed,
        config.output_tokens_min,
        config.output_tokens_max,
        int_directive(directives, "output_tokens"),
    )
    if forced is not None:
        # Cut short: a paused turn, a refusal, the window reached mid-answer.
        _text(reply, parsed, seed, max(1, wanted // 2), limit - reply.output_tokens, cut)
        if reply.stop_reason != cut:
            reply.stop_reason = forced
        if forced == "refusal":
            reply.stop_details = {"type": "refusal", "category": None, "explanation": None}
        return reply
    calls = tooluse.plan(
        parsed, int_directive(directives, "tool_rounds"), int_directive(directives, "parallel")
    )
    if calls:
        _tool_calls(reply, parsed, call.digest, seed, calls, limit, cut)
    else:
        _text(reply, parsed, seed, wanted, limit - reply.output_tokens, cut)
    return reply


def _text(reply: Reply, parsed: Parsed, seed: int, wanted: int, left: int, cut: str) -> None:
    if left <= 0:
        reply.stop_reason = cut
        return
    if parsed.output_schema is not None:
        text = json.dumps(schemagen.instance(parsed.output_schema, seed))
        n = tokens.text_tokens(text)
        if n > left:
            text, n = text[: 4 * left], left
            reply.stop_reason = cut
        reply.add({"type": "text", "text": text}, n)
        return
    answer = textgen.answer(seed, wanted, left, parsed.stop_sequences)
    if answer.text:
        reply.add({"type": "text", "text": answer.text}, answer.output_tokens)
    reply.stop_reason = cut if answer.stop_reason == "max_tokens" else answer.stop_reason
    reply.stop_sequence = answer.stop_sequence


def _tool_calls(
    reply: Reply,
    parsed: Parsed,
    digest: str,
    seed: int,
    calls: list[str],
    limit: int,
    cut: str,
) -> None:
    if not parsed.tools.forced:
        n = min(_PREAMBLE_TOKENS, limit - reply.output_tokens)
        if n > 0:
            reply.add({"type": "text", "text": textgen.text_of(seed >> 8, n)}, n)
    for k, name in enumerate(calls):
        left = limit - reply.output_tokens
        value = schemagen.instance(parsed.tools.custom[name], seed + 31 * k)
        if not isinstance(value, dict):
            value = {}
        n = tooluse.block_tokens(name, value)
        if n > left:
            value = tooluse.cut_input(value, max(0, left - (n - tokens.json_tokens(value))))
            if left > 0:
                reply.add(_tool_block(digest, k, name, value), left)
            reply.stop_reason = cut
            return
        reply.add(_tool_block(digest, k, name, value), n)
    reply.stop_reason = "tool_use"


def _tool_block(digest: str, k: int, name: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": tooluse.tool_id(digest, k), "name": name, "input": value}

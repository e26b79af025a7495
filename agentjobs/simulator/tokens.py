"""Deterministic token counts: about 4 characters per token.

Not Anthropic's tokenizer (which is not public), but stable and cheap, and the same
functions serve ``/v1/messages`` and ``/v1/messages/count_tokens``, so a client that
calibrates its estimate on count_tokens sees exactly what it will be charged.

    request   = REQUEST_OVERHEAD + tools + system + sum(messages)
    tools     = tool prompt (346 with tool_choice auto/none, 313 with any/tool)
                + sum(TOOL_OVERHEAD + JSON of the definition)
    message   = MESSAGE_OVERHEAD + sum(blocks)
    text      = ceil(len(text) / 4), at least 1 for non-empty text

Blocks other than text (images, documents, tool results...) are counted in
``content``; images and PDFs by ``media``.
"""

from __future__ import annotations

import json
from typing import Any

REQUEST_OVERHEAD = 4
MESSAGE_OVERHEAD = 3
TOOL_OVERHEAD = 20
TOOL_RESULT_OVERHEAD = 10
#: The system prompt the API adds when tools are given (Anthropic's pricing page, for
#: Claude 4.x models): forcing a tool needs a shorter one.
TOOL_PROMPT_AUTO = 346
TOOL_PROMPT_FORCED = 313


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def json_tokens(value: Any) -> int:
    return text_tokens(json_text(value))


def tool_tokens(tool: dict[str, Any]) -> int:
    body = {k: v for k, v in tool.items() if k != "cache_control"}
    return TOOL_OVERHEAD + json_tokens(body)


def tool_prompt_tokens(tool_choice: dict[str, Any] | None) -> int:
    forced = tool_choice is not None and tool_choice.get("type") in ("any", "tool")
    return TOOL_PROMPT_FORCED if forced else TOOL_PROMPT_AUTO

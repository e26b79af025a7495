"""Deterministic token counts: about 4 characters per token.

Not Anthropic's tokenizer (which is not public), but stable and cheap, and the same
function serves ``/v1/messages`` and ``/v1/messages/count_tokens``, so a client that
calibrates its estimate on count_tokens sees exactly what it will be charged.

    request   = REQUEST_OVERHEAD + tools + system + sum(messages)
    message   = MESSAGE_OVERHEAD + sum(blocks)
    text      = ceil(len(text) / 4), at least 1 for non-empty text
"""

from __future__ import annotations

import json
from typing import Any

REQUEST_OVERHEAD = 4
MESSAGE_OVERHEAD = 3
TOOL_OVERHEAD = 20
#: An image or PDF page costs roughly this at Anthropic's usual sizes.
IMAGE_TOKENS = 1_600


def text_tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _json_tokens(value: Any) -> int:
    return text_tokens(json.dumps(value, separators=(",", ":"), sort_keys=True))


def block_tokens(block: dict[str, Any]) -> int:
    """Tokens of one validated content block."""
    kind = block.get("type")
    if kind == "text":
        return text_tokens(block["text"])
    if kind in ("image", "document"):
        return IMAGE_TOKENS
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return 10 + text_tokens(content)
        if isinstance(content, list):
            return 10 + sum(block_tokens(b) for b in content if isinstance(b, dict))
        return 10
    if kind == "thinking":
        return text_tokens(block.get("thinking", ""))
    body = {k: v for k, v in block.items() if k != "cache_control"}
    return _json_tokens(body)


def tool_tokens(tool: dict[str, Any]) -> int:
    body = {k: v for k, v in tool.items() if k != "cache_control"}
    return TOOL_OVERHEAD + _json_tokens(body)

"""The one estimate of a request's input tokens, made before the call.

The limiter books it against ITPM (and corrects it with each group's observed ratio),
the budget prices it, the router compares it with its threshold. Characters are
counted, never joined: a prompt may be megabytes and only its length matters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Tokens the API adds per request and per message beyond the text (roughly).
REQUEST_OVERHEAD_TOKENS = 4
MESSAGE_OVERHEAD_TOKENS = 3


@dataclass(frozen=True)
class InputEstimate:
    """Estimated input tokens of one request, by part."""

    system: int
    messages: int
    overhead: int

    @property
    def total(self) -> int:
        return self.system + self.messages + self.overhead


def text_chars(content: Any) -> int:
    """Characters of text in a string or a list of content blocks."""
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    n = 0
    for block in content:
        text = getattr(block, "text", None)
        if text is None and isinstance(block, dict):
            text = block.get("text")
        if isinstance(text, str):
            n += len(text)
    return n


def estimate_input(
    *, system: Any, prompt: str | None, messages: list[Any] | None, chars_per_token: float
) -> InputEstimate:
    """Input tokens from text lengths at ``chars_per_token``, by part."""
    message_chars = len(prompt or "") + sum(
        text_chars(getattr(m, "content", None)) for m in messages or ()
    )
    count = len(messages) if messages is not None else 1
    return InputEstimate(
        system=math.ceil(text_chars(system) / chars_per_token),
        messages=math.ceil(message_chars / chars_per_token),
        overhead=REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * count,
    )

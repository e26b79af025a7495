"""The one estimate of a request's input tokens, made before the call.

The limiter books it against ITPM (and corrects it with each group's observed ratio),
the budget prices it, the router compares it with its threshold. Characters are
counted, never joined: a prompt may be megabytes and only its length matters.

What is not text is counted as the API counts it, roughly:

- tools: their definitions' JSON, plus the tool-use system prompt the API adds
  (a few hundred tokens) when any tool is given;
- an image: width x height / 750 from the image's own header, at most
  ``IMAGE_MAX_TOKENS`` (the API scales a larger image down to about 1.15 megapixels);
  an image given by URL or file id, whose size is unknown here, counts the maximum;
- a PDF: ``PDF_PAGE_TOKENS`` per page (each page is read as text and as an image);
  by URL or file id ``UNKNOWN_PDF_PAGES`` pages; a text document by its length.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentjobs.messages.content import (
    Base64ImageSource,
    Base64PDFSource,
    ContentSource,
    DocumentBlock,
    ImageBlock,
    PassThroughBlock,
    PlainTextSource,
    RedactedThinkingBlock,
    SearchResultBlock,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from agentjobs.messages.tools import TOOL_PROMPT_TOKENS

#: Tokens the API adds per request and per message beyond the text (roughly).
REQUEST_OVERHEAD_TOKENS = 4
MESSAGE_OVERHEAD_TOKENS = 3
#: The most an image costs: the API scales larger ones down to about 1.15 megapixels.
IMAGE_MAX_TOKENS = 1_600
#: Pixels per token of an image.
IMAGE_PIXELS_PER_TOKEN = 750
#: A PDF page: its text (1,500-3,000 tokens in Anthropic's docs) and its page image.
PDF_PAGE_TOKENS = 3_000
#: Pages assumed for a PDF given by URL or file id (not read here).
UNKNOWN_PDF_PAGES = 5


@dataclass(frozen=True)
class InputEstimate:
    """Estimated input tokens of one request, by part."""

    system: int
    messages: int
    overhead: int
    tools: int = 0

    @property
    def total(self) -> int:
        return self.system + self.messages + self.overhead + self.tools


@dataclass
class _Count:
    """Characters of text, and tokens of what is not text (images, PDF pages)."""

    chars: int = 0
    tokens: int = 0

    def tokens_at(self, chars_per_token: float) -> int:
        return math.ceil(self.chars / chars_per_token) + self.tokens


def image_tokens(block: ImageBlock) -> int:
    """About width x height / 750, at most ``IMAGE_MAX_TOKENS``; the maximum when the
    size is unknown (a URL, a file id, a header that could not be read)."""
    source = block.source
    info = source.info if isinstance(source, Base64ImageSource) else None
    if info is None or not info.width or not info.height:
        return IMAGE_MAX_TOKENS
    pixels = info.width * info.height
    return min(IMAGE_MAX_TOKENS, max(1, math.ceil(pixels / IMAGE_PIXELS_PER_TOKEN)))


def _json_chars(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _content(content: Any, count: _Count) -> None:
    if content is None:
        return
    if isinstance(content, str):
        count.chars += len(content)
        return
    for block in content:
        _block(block, count)


def _block(block: Any, count: _Count) -> None:
    if isinstance(block, TextBlock):
        count.chars += len(block.text)
    elif isinstance(block, ImageBlock):
        count.tokens += image_tokens(block)
    elif isinstance(block, DocumentBlock):
        count.chars += len(block.title or "") + len(block.context or "")
        source = block.source
        if isinstance(source, Base64PDFSource):
            count.tokens += source.pages * PDF_PAGE_TOKENS
        elif isinstance(source, PlainTextSource):
            count.chars += len(source.data)
        elif isinstance(source, ContentSource):
            _content(source.content, count)
        else:  # a PDF by URL or file id
            count.tokens += UNKNOWN_PDF_PAGES * PDF_PAGE_TOKENS
    elif isinstance(block, SearchResultBlock):
        count.chars += len(block.source) + len(block.title)
        _content(block.content, count)
    elif isinstance(block, ToolUseBlock):
        count.chars += len(block.name) + _json_chars(block.input)
    elif isinstance(block, ToolResultBlock):
        _content(block.content, count)
    elif isinstance(block, ThinkingBlock):
        count.chars += len(block.thinking)
    elif isinstance(block, RedactedThinkingBlock):
        count.chars += len(block.data)
    elif isinstance(block, PassThroughBlock):
        count.chars += _json_chars(block.as_sent())
    elif isinstance(block, dict) and isinstance(block.get("text"), str):
        count.chars += len(block["text"])


def tools_tokens(tools: Iterable[Any] | None, tool_choice: Any, chars_per_token: float) -> int:
    """The definitions' JSON (cache marks aside) plus the tool-use system prompt."""
    tools = list(tools or ())
    if not tools:
        return 0
    chars = 0
    for tool in tools:
        body = tool.as_sent()
        body.pop("cache_control", None)
        chars += _json_chars(body)
    kind = getattr(tool_choice, "type", "auto")
    return math.ceil(chars / chars_per_token) + TOOL_PROMPT_TOKENS.get(
        kind, TOOL_PROMPT_TOKENS["auto"]
    )


def estimate_input(
    *,
    system: Any,
    prompt: str | None,
    messages: list[Any] | None,
    chars_per_token: float,
    tools: Iterable[Any] | None = None,
    tool_choice: Any = None,
) -> InputEstimate:
    """Input tokens from text lengths at ``chars_per_token``, images and PDF pages at
    their own rates, by part."""
    system_count, message_count = _Count(), _Count(chars=len(prompt or ""))
    _content(system, system_count)
    for m in messages or ():
        _content(getattr(m, "content", None), message_count)
    count = len(messages) if messages is not None else 1
    return InputEstimate(
        system=system_count.tokens_at(chars_per_token),
        messages=message_count.tokens_at(chars_per_token),
        overhead=REQUEST_OVERHEAD_TOKENS + MESSAGE_OVERHEAD_TOKENS * count,
        tools=tools_tokens(tools, tool_choice, chars_per_token),
    )

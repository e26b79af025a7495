"""The one input-token estimate covers tools, images and documents (messages/estimate.py)."""

from __future__ import annotations

import base64
import json
import math
import struct
import zlib
from typing import Any

import pytest

from agentjobs.call import Call
from agentjobs.messages import estimate
from agentjobs.messages.request import parse_request
from agentjobs.spend import budget

CPT = 4.0


def png(width: int, height: int) -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = zlib.compress(b"".join(b"\x00" + b"\x00" * width for _ in range(height)))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


def tokens(**kwargs: Any) -> estimate.InputEstimate:
    return parse_request({"max_tokens": 100, **kwargs}).input_estimate(CPT)


def blocks(*content: Any) -> estimate.InputEstimate:
    return tokens(messages=[{"role": "user", "content": list(content)}])


TEXT = {"type": "text", "text": "x" * 400}  # 100 tokens at 4 characters per token
TOOL = {
    "name": "get_weather",
    "description": "The weather in a city, now.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_tools_count_their_definitions_and_the_tool_prompt() -> None:
    plain = tokens(prompt="hi")
    with_tool = tokens(prompt="hi", tools=[TOOL])
    definition = math.ceil(len(json.dumps(TOOL, separators=(",", ":"))) / CPT)
    assert with_tool.tools == definition + 346
    assert with_tool.total == plain.total + definition + 346
    forced = tokens(prompt="hi", tools=[TOOL], tool_choice={"type": "any"})
    assert forced.tools == definition + 313
    # a cache mark is not part of the definition's text
    marked = tokens(prompt="hi", tools=[{**TOOL, "cache_control": {"type": "ephemeral"}}])
    assert marked.tools == with_tool.tools
    server = tokens(prompt="hi", tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert server.tools > 346
    assert plain.tools == 0


@pytest.mark.parametrize(
    ("size", "expected"),
    [((300, 200), 80), ((1000, 500), 667), ((1092, 1092), 1590), ((4000, 3000), 1600)],
)
def test_an_image_costs_its_pixels_over_750(size: tuple[int, int], expected: int) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}
    image["source"]["data"] = png(*size)
    assert blocks(TEXT, image).messages - blocks(TEXT).messages == expected


def test_an_image_of_unknown_size_costs_the_most() -> None:
    for source in (
        {"type": "url", "url": "https://example.com/a.png"},
        {"type": "file", "file_id": "f"},
    ):
        image = {"type": "image", "source": source}
        assert blocks(TEXT, image).messages - blocks(TEXT).messages == estimate.IMAGE_MAX_TOKENS


def test_images_inside_tool_results_and_documents_count() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png"}}
    image["source"]["data"] = png(1000, 500)
    asked = {
        "role": "assistant",
        "content": [{"type": "tool_use", "id": "toolu_1", "name": "shot", "input": {}}],
    }
    answer = {"type": "tool_result", "tool_use_id": "toolu_1", "content": [image]}
    convo = [{"role": "user", "content": "look"}, asked, {"role": "user", "content": [answer]}]
    tool_use_chars = len("shot") + len("{}")
    assert tokens(messages=convo).messages == math.ceil((4 + tool_use_chars) / CPT) + 667
    doc = {"type": "document", "source": {"type": "content", "content": [TEXT, image]}}
    assert blocks(doc).messages == 100 + 667


def pdf(pages: int) -> str:
    objects = b"".join(b"<< /Type /Page >>\n" for _ in range(pages))
    return base64.b64encode(b"%PDF-1.7\n" + objects + b"%%EOF").decode()


def test_documents_by_page_or_by_length() -> None:
    pdf_doc = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": pdf(3)},
    }
    assert blocks(pdf_doc).messages == 3 * estimate.PDF_PAGE_TOKENS
    by_url = {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
    assert blocks(by_url).messages == estimate.UNKNOWN_PDF_PAGES * estimate.PDF_PAGE_TOKENS
    text_doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "y" * 4000},
        "title": "t" * 40,
        "context": "c" * 60,
    }
    assert blocks(text_doc).messages == 1025


def test_limiter_budget_and_router_share_the_estimate() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    kwargs = {"messages": [{"role": "user", "content": [TEXT, image]}], "tools": [TOOL]}
    call = Call({**kwargs, "model": "haiku", "max_tokens": 100})
    est = call.request.input_estimate(call.settings.limiter_chars_per_token)
    assert call.input_tokens == est.total
    assert est.total > est.messages > estimate.IMAGE_MAX_TOKENS
    plain = parse_request({"prompt": "x" * 400, "model": "haiku", "max_tokens": 100})
    assert budget.estimate_usd(call.request) > budget.estimate_usd(plain)

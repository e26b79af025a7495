"""The request surface through the SDK: every block type, tools, tool_choice, thinking,
output_config and the other settings; refused as the API refuses (400 with its message
style), accepted as it accepts; and what images, documents and tools count as input."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import pytest

from agentjobs.simulator import SimHandle, media, thinking

from .conftest import user
from .media_files import b64, image_block, pdf_block

WEATHER = {
    "name": "get_weather",
    "description": "Current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TOOL_USE = {
    "type": "tool_use",
    "id": "toolu_01abc",
    "name": "get_weather",
    "input": {"city": "Oslo"},
}
RESULT = {"type": "tool_result", "tool_use_id": "toolu_01abc", "content": "4 C, rain"}


def req(content: Any = "hi", **kw: Any) -> dict[str, Any]:
    return {"model": "sonnet", "max_tokens": 2000, "messages": user(content), **kw}  # type: ignore[arg-type]


def loop(assistant: list[Any], answer: list[Any], **kw: Any) -> dict[str, Any]:
    """A tool round: question, the assistant's turn, the user's turn after it."""
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": answer},
    ]
    return {"model": "sonnet", "max_tokens": 2000, "messages": messages, "tools": [WEATHER], **kw}


def png(**source: Any) -> dict[str, Any]:
    block = image_block()
    block["source"].update(source)
    return block


def thought(text: str = "Let me think.") -> dict[str, Any]:
    return {"type": "thinking", "thinking": text, "signature": thinking.sign(text)}


ON = {"type": "enabled", "budget_tokens": 1024}
QUESTION = {"type": "text", "text": "?"}


def doc(kind: str, **source: Any) -> dict[str, Any]:
    return {"type": "document", "source": {"type": kind, **source}}


def cached(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}


def twice_the_same_tool_use() -> dict[str, Any]:
    body = loop([TOOL_USE], [RESULT])
    again = [{"role": "assistant", "content": [TOOL_USE]}, {"role": "user", "content": [RESULT]}]
    return {**body, "messages": [*body["messages"], *again]}


PDF_BAD_TYPE = doc("base64", media_type="application/x-pdf", data="JVBE")
NOT_A_PDF = doc("base64", media_type="application/pdf", data=b64(b"<html>"))
FIVE_MARKS = req(
    [cached("p0"), cached("p1"), cached("p2"), {"type": "text", "text": "last"}],
    system=[cached("s")],
    cache_control={"type": "ephemeral"},
)
PREFILL = {**req(), "messages": [*user("hi"), {"role": "assistant", "content": "Sure "}]}
NO_WS = "stop sequences must contain non-whitespace"
UNANSWERED = "`tool_use` ids were found without `tool_result` blocks immediately after"
UNEXPECTED = "unexpected `tool_use_id` found in `tool_result` blocks"

BAD = [
    pytest.param(
        req([{"type": "text", "text": "x", "citations": [{"type": "page"}]}]),
        "text.citations.0.type: Input tag 'page'",
        id="citation type",
    ),
    pytest.param(
        req([{"type": "text", "text": "x", "lang": "en"}]),
        "content.0.text.lang: Extra inputs are not permitted",
        id="text extra field",
    ),
    pytest.param(
        req([png(media_type="image/bmp")]),
        "image.source.base64.media_type: Input should be 'image/jpeg', 'image/png'",
        id="image media type",
    ),
    pytest.param(
        req([png(media_type="image/jpeg")]),
        "specified using the image/jpeg media type, but the image appears to be a image/png",
        id="image type mismatch",
    ),
    pytest.param(
        req([png(data="A" * (media.MAX_IMAGE_BYTES + 4))]),
        "image exceeds 5 MB maximum: 5242884 bytes > 5242880 bytes",
        id="image over 5 MB",
    ),
    pytest.param(
        req([png(data=b64(b"just some text, not pixels"))]),
        "image.source.base64.data: Could not process image",
        id="image not an image",
    ),
    pytest.param(req([png(data="%%%not base64%%%")]), "not valid base64", id="image base64"),
    pytest.param(
        req([image_block(8001, 8)]),
        "image dimensions exceed max allowed size: 8000 pixels",
        id="image over 8000 px",
    ),
    pytest.param(
        req([image_block(2001, 8)] + [image_block(8, 8)] * 20),
        "max allowed size for many-image requests: 2000 pixels",
        id="many images, one large",
    ),
    pytest.param(
        req([{"type": "image", "source": {"type": "url"}}]),
        "image.source.url.url: Field required",
        id="image url missing",
    ),
    pytest.param(
        req([{"type": "image", "source": {"type": "ftp", "url": "x"}}]),
        "image.source.type: Input tag 'ftp'",
        id="image source type",
    ),
    pytest.param(
        req([PDF_BAD_TYPE]),
        "document.source.base64.media_type: Input should be 'application/pdf'",
        id="pdf media type",
    ),
    pytest.param(req([NOT_A_PDF]), "The PDF specified was not valid.", id="pdf not a pdf"),
    pytest.param(
        req([pdf_block(101)]),
        "A maximum of 100 PDF pages may be provided.",
        id="pdf over 100 pages",
    ),
    pytest.param(
        req([doc("text", media_type="text/markdown", data="x")]),
        "document.source.text.media_type: Input should be 'text/plain'",
        id="plain text media type",
    ),
    pytest.param(
        req([doc("content", content=[TOOL_USE])]),
        "source.content.content.0.type: Input tag 'tool_use'",
        id="document content block",
    ),
    pytest.param(
        req([{"type": "search_result", "source": "s", "title": "t"}]),
        "search_result.content: Field required",
        id="search_result content",
    ),
    pytest.param(
        req([TOOL_USE], tools=[WEATHER]),
        "`tool_use` blocks are not allowed in `user` messages",
        id="tool_use in a user turn",
    ),
    pytest.param(
        loop([TOOL_USE | {"id": "bad id!"}], [RESULT]),
        "tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
        id="tool_use id",
    ),
    pytest.param(
        loop([TOOL_USE | {"input": "Oslo"}], [RESULT]),
        "tool_use.input: Input should be a valid dictionary",
        id="tool_use input",
    ),
    pytest.param(
        loop([TOOL_USE], [RESULT | {"is_error": "yes"}]),
        "tool_result.is_error: Input should be a valid boolean",
        id="tool_result is_error",
    ),
    pytest.param(
        loop([TOOL_USE], [RESULT | {"content": [thought()]}]),
        "tool_result.content.0.type: Input tag 'thinking'",
        id="tool_result content",
    ),
    pytest.param(
        loop([{"type": "thinking", "thinking": "hm"}, TOOL_USE], [RESULT]),
        "thinking.signature: Field required",
        id="thinking signature",
    ),
    pytest.param(
        loop([{"type": "redacted_thinking"}, TOOL_USE], [RESULT]),
        "redacted_thinking.data: Field required",
        id="redacted_thinking data",
    ),
    pytest.param(
        req(tools=[WEATHER | {"name": "get weather"}]),
        "tools.0.custom.name: String should match pattern '^[a-zA-Z0-9_-]{1,128}$'",
        id="tool name",
    ),
    pytest.param(
        req(tools=[WEATHER | {"name": "t" * 129}]),
        "String should match pattern",
        id="tool name length",
    ),
    pytest.param(
        req(tools=[WEATHER, WEATHER]), "tools: Tool names must be unique.", id="tool names unique"
    ),
    pytest.param(
        req(tools=[WEATHER | {"input_schema": {"type": "array"}}]),
        "tools.0.custom.input_schema.type: Input should be 'object'",
        id="input_schema type",
    ),
    pytest.param(
        req(tools=[{"name": "t"}]),
        "tools.0.custom.input_schema: Field required",
        id="input_schema missing",
    ),
    pytest.param(
        req(tools=[{"type": "web_search", "name": "web_search"}]),
        "tools.0: Input tag 'web_search'",
        id="server tool type",
    ),
    pytest.param(
        req(tools=[WEATHER], tool_choice={"type": "tool", "name": "x"}),
        "tool_choice.tool.name: Tool 'x' not found in provided tools",
        id="tool_choice names no tool",
    ),
    pytest.param(
        req(tools=[WEATHER], tool_choice={"type": "required"}),
        "tool_choice: Input tag 'required'",
        id="tool_choice type",
    ),
    pytest.param(
        req(tool_choice={"type": "any"}),
        "requires at least one tool",
        id="tool_choice any without tools",
    ),
    pytest.param(
        req(thinking={"type": "enabled", "budget_tokens": 1000}),
        "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        id="thinking budget",
    ),
    pytest.param(
        req(thinking={"type": "enabled", "budget_tokens": 2000}),
        "`max_tokens` must be greater than `thinking.budget_tokens`",
        id="thinking budget over max_tokens",
    ),
    pytest.param(
        req(thinking={"type": "sometimes"}), "thinking: Input tag 'sometimes'", id="thinking type"
    ),
    pytest.param(
        req(tools=[WEATHER], tool_choice={"type": "any"}, thinking=ON),
        "Thinking may not be enabled when tool_choice forces tool use.",
        id="thinking forced tool",
    ),
    pytest.param(
        req(thinking=ON, temperature=0.5),
        "`temperature` may only be set to 1 when thinking is enabled",
        id="thinking temperature",
    ),
    pytest.param(
        req(output_config={"format": {"type": "json", "schema": {}}}),
        "output_config.format: Input tag 'json'",
        id="output format type",
    ),
    pytest.param(
        req(output_config={"format": {"type": "json_schema"}}),
        "output_config.format.json_schema.schema: Field required",
        id="output format schema",
    ),
    pytest.param(
        req(output_config={"effort": "extreme"}),
        "output_config.effort: Input should be",
        id="effort",
    ),
    pytest.param(
        req(cache_control={"type": "persistent"}),
        "cache_control.type: Input should be 'ephemeral'",
        id="top-level cache_control",
    ),
    pytest.param(
        FIVE_MARKS,
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        id="fifth breakpoint",
    ),
    pytest.param(
        req(service_tier="priority"),
        "service_tier: Input should be 'auto' or 'standard_only'",
        id="service_tier",
    ),
    pytest.param(req(top_p=1.5), "top_p: Input should be between 0 and 1", id="top_p"),
    pytest.param(req(top_k=-1), "top_k: Input should be greater than or equal to 0", id="top_k"),
    pytest.param(
        req(temperature=0.5, top_p=0.9), "cannot both be specified", id="temperature and top_p"
    ),
    pytest.param(req(stop_sequences=[""]), f"stop_sequences.0: {NO_WS}", id="empty stop"),
    pytest.param(req(stop_sequences=["ok", " \n"]), f"stop_sequences.1: {NO_WS}", id="blank stop"),
    pytest.param(
        loop([TOOL_USE], [{"type": "text", "text": "go on"}]),
        f"messages.1: {UNANSWERED}: toolu_01abc",
        id="tool_use unanswered",
    ),
    pytest.param(
        loop([TOOL_USE], [{"type": "text", "text": "here"}, RESULT]),
        UNANSWERED,
        id="tool_result after text",
    ),
    pytest.param(
        loop([TOOL_USE], [RESULT, RESULT | {"tool_use_id": "toolu_02"}]),
        f"messages.2.content.1: {UNEXPECTED}: toolu_02",
        id="tool_result unknown id",
    ),
    pytest.param(
        loop([{"type": "text", "text": "ok"}], [RESULT]),
        f"{UNEXPECTED}: toolu_01abc",
        id="tool_result without tool_use",
    ),
    pytest.param(
        loop([TOOL_USE], [RESULT]) | {"tools": []},
        "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        id="tool blocks without tools",
    ),
    pytest.param(
        twice_the_same_tool_use(), "`tool_use` ids must be unique", id="tool_use ids unique"
    ),
    pytest.param(
        req(metadata={"user_id": "u1", "team": "x"}),
        "metadata.team: Extra inputs are not permitted",
        id="metadata field",
    ),
    pytest.param(
        PREFILL,
        "final assistant content cannot end with trailing whitespace",
        id="prefill trailing space",
    ),
    pytest.param(req("word " * 170_000), "prompt is too long: ", id="prompt too long"),
]


@pytest.mark.parametrize(("body", "message"), BAD)
def test_refused_as_the_api_refuses(
    client: anthropic.Anthropic, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        client.post("/v1/messages", body=body, cast_to=object)
    assert info.value.type == "invalid_request_error"
    assert message in (info.value.api_message or "")


def _roundtrip_blocks() -> list[dict[str, Any]]:
    """What an SDK answer's model_dump() gives back: response fields left as they are."""
    return [
        thought(),
        {"type": "text", "text": "Checking.", "citations": None},
        TOOL_USE | {"caller": None},
    ]


CITATION = {
    "type": "char_location",
    "cited_text": "x",
    "document_index": 0,
    "document_title": None,
    "start_char_index": 0,
    "end_char_index": 1,
}
WEB_TURN = [
    {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"q": "x"}},
    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
    {"type": "text", "text": "Nothing."},
]
SEARCH = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 2}]
SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}},
    "required": ["a"],
    "additionalProperties": False,
}
CHOICES = [
    {"type": "auto", "disable_parallel_tool_use": True},
    {"type": "any"},
    {"type": "tool", "name": "get_weather"},
    {"type": "none"},
]
THINKINGS = [
    {"type": "adaptive"},
    {"type": "disabled"},
    {"type": "enabled", "budget_tokens": 1024, "display": "omitted"},
]
SEARCHED = {"type": "search_result", "source": "https://example.com", "title": "T"}
GOOD = [
    pytest.param(
        req([{"type": "text", "text": "As stated.", "citations": [CITATION]}]), id="citation"
    ),
    *[
        pytest.param(req([image_block(64, 48, mt), QUESTION]), id=mt)
        for mt in ("image/png", "image/jpeg", "image/gif", "image/webp")
    ],
    pytest.param(
        req(
            [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                QUESTION,
            ]
        ),
        id="image url and file",
    ),
    pytest.param(
        req([pdf_block(2, title="R", context="Q3", citations={"enabled": True}), QUESTION]),
        id="pdf",
    ),
    pytest.param(
        req([doc("text", media_type="text/plain", data="Notes."), QUESTION]), id="plain text"
    ),
    pytest.param(
        req([doc("content", content=[{"type": "text", "text": "a"}, image_block(8, 8)]), QUESTION]),
        id="content document",
    ),
    pytest.param(
        req([doc("url", url="https://example.com/a.pdf"), doc("file", file_id="f"), QUESTION]),
        id="pdf by url and file",
    ),
    pytest.param(
        req([SEARCHED | {"content": [QUESTION], "citations": {"enabled": True}}, QUESTION]),
        id="search_result",
    ),
    pytest.param(loop(_roundtrip_blocks(), [RESULT], thinking=ON), id="answer blocks passed back"),
    pytest.param(
        loop([TOOL_USE], [RESULT | {"content": [QUESTION, image_block(8, 8)], "is_error": True}]),
        id="tool_result with image, is_error",
    ),
    pytest.param(
        loop([{"type": "redacted_thinking", "data": "opaque"}, TOOL_USE], [RESULT], thinking=ON),
        id="redacted thinking first",
    ),
    pytest.param(
        {
            **req(tools=SEARCH),
            "messages": [*user("news?"), {"role": "assistant", "content": WEB_TURN}, *user("ok")],
        },
        id="server tool and its blocks",
    ),
    *[pytest.param(req(tools=[WEATHER], tool_choice=c), id=c["type"]) for c in CHOICES],
    pytest.param(
        req(tools=[WEATHER | {"strict": True, "cache_control": {"type": "ephemeral"}}]),
        id="strict tool",
    ),
    *[pytest.param(req(thinking=t), id=str(t)) for t in THINKINGS],
    pytest.param(
        req(output_config={"effort": "low", "format": {"type": "json_schema", "schema": SCHEMA}}),
        id="output_config",
    ),
    pytest.param(
        req(
            cache_control={"type": "ephemeral", "ttl": "1h"},
            service_tier="standard_only",
            top_p=0.9,
            top_k=40,
            metadata={"user_id": "u1"},
            stop_sequences=["END"],
        ),
        id="settings",
    ),
    pytest.param(req(max_tokens=0), id="max_tokens 0"),
    pytest.param(
        {**req(), "messages": [{"role": "system", "content": "Be brief."}, *user("hi")]},
        id="system role message",
    ),
]


@pytest.mark.parametrize("body", GOOD)
def test_accepted_as_the_api_accepts(client: anthropic.Anthropic, body: dict[str, Any]) -> None:
    # client.post: this SDK has no top_p/top_k arguments (they go as extra_body).
    msg = client.post("/v1/messages", body=body, cast_to=anthropic.types.Message)
    assert msg.type == "message" and msg.usage.input_tokens > 0
    if body["max_tokens"] == 0:
        assert msg.content == [] and msg.usage.output_tokens == 0


def raw_post(server: SimHandle, data: bytes) -> httpx2.Response:
    headers = {"x-api-key": "k", "content-type": "application/json"}
    return httpx2.post(server.base_url + "/v1/messages", content=data, headers=headers)


def test_lone_surrogate_refused_pairs_accepted(server: SimHandle) -> None:
    # The SDK cannot send a lone surrogate (it encodes UTF-8); a JSON escape can.
    body = b'{"model":"haiku","max_tokens":5,"messages":[{"role":"user","content":"a\\ud800b"}]}'
    lone = raw_post(server, body)
    assert lone.status_code == 400 and "lone surrogate" in lone.json()["error"]["message"]
    pair = raw_post(server, body.replace(b"\\ud800", b"\\ud83d\\ude00"))
    assert pair.status_code == 200


def test_deep_nesting_is_a_400(server: SimHandle) -> None:
    deep = b'{"a":' * 3000 + b"1" + b"}" * 3000
    body = b'{"model":"haiku","max_tokens":5,"messages":[{"role":"user","content":"x"}],"metadata":'
    r = raw_post(server, body + deep + b"}")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def count(client: anthropic.Anthropic, **kw: Any) -> int:
    kw.setdefault("messages", user("hi"))
    return client.messages.count_tokens(model="sonnet", **kw).input_tokens


@pytest.mark.parametrize(
    ("size", "expected"),
    [((640, 480), 410), ((200, 200), 54), ((3000, 2000), 1534), ((1568, 100), 210)],
)
def test_image_tokens_from_its_dimensions(
    client: anthropic.Anthropic, size: tuple[int, int], expected: int
) -> None:
    base = count(client, messages=user([{"type": "text", "text": "?"}]))
    for mt in ("image/png", "image/jpeg", "image/webp", "image/gif"):
        blocks = [image_block(*size, mt), {"type": "text", "text": "?"}]
        assert count(client, messages=user(blocks)) - base == expected, mt


def test_document_tokens(client: anthropic.Anthropic) -> None:
    base = count(client, messages=user([{"type": "text", "text": "?"}]))
    three = count(client, messages=user([pdf_block(3), {"type": "text", "text": "?"}]))
    assert three - base == 3 * media.PDF_PAGE_TOKENS
    text = doc("text", media_type="text/plain", data="x" * 400)
    assert count(client, messages=user([text, QUESTION])) - base == 100


def test_tools_count_their_definitions_and_the_tool_prompt(client: anthropic.Anthropic) -> None:
    plain = count(client)
    auto = count(client, tools=[WEATHER])
    forced = count(client, tools=[WEATHER], tool_choice={"type": "any"})
    two = count(client, tools=[WEATHER, WEATHER | {"name": "put_weather"}])  # same length
    one_tool = two - auto
    assert one_tool > 20  # the definition's own JSON, plus its overhead
    assert auto - plain == 346 + one_tool
    assert forced - plain == 313 + one_tool


def test_usage_equals_count_tokens_for_the_whole_surface(client: anthropic.Anthropic) -> None:
    kw: dict[str, Any] = {
        "model": "sonnet",
        "system": "Be exact.",
        "tools": [WEATHER],
        "messages": user([image_block(800, 600), pdf_block(2), {"type": "text", "text": "?"}]),
    }
    counted = client.messages.count_tokens(**kw).input_tokens
    msg = client.messages.create(max_tokens=100, **kw)
    assert msg.usage.input_tokens == counted
    assert counted > 640 + 2 * media.PDF_PAGE_TOKENS + 346

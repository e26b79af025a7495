"""Messages and their content blocks, as the Messages API takes them.

Field names follow the installed SDK's request types (``anthropic/types/*_param.py``).
A block agentjobs reads (text, image, document, search result, tool use and result,
thinking) is checked as the API checks it and refuses unknown fields, as the API does;
the parts of it agentjobs does not read (citations, a caller, image transformations)
and the server-tool blocks (web search results, code execution, ...) pass through as
given, extra fields included. Every block is sent exactly as it was given (``as_sent``),
so an answer's ``content`` appended to the next request comes back unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictStr,
    field_validator,
    model_serializer,
    model_validator,
)

from agentjobs.messages import media

#: The API refuses a base64 image over 5 MB; it measures the base64 text, not the bytes.
MAX_IMAGE_BASE64_CHARS = 5 * 1024 * 1024
#: The API refuses an image with a side longer than this, in pixels.
MAX_IMAGE_SIDE = 8000
_TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


class Part(BaseModel):
    """A piece of a request: unknown fields refused, sent back exactly as given."""

    model_config = ConfigDict(extra="forbid")

    def as_sent(self) -> dict[str, Any]:
        """The JSON object as given: fields left out stay out, an explicit null stays."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class Loose(Part):
    """A part agentjobs passes through: what the API adds later is not refused here."""

    model_config = ConfigDict(extra="allow")


class CacheControl(Part):
    """A prompt-cache breakpoint."""

    type: Literal["ephemeral"] = "ephemeral"
    ttl: Literal["5m", "1h"] | None = None

    @model_serializer
    def _as_api(self) -> dict[str, Any]:
        # ``type`` is required by the API even when the caller left it to its default.
        return {"type": self.type, **({"ttl": self.ttl} if self.ttl else {})}


class CitationsConfig(Part):
    enabled: StrictBool | None = None


class TextBlock(Part):
    type: Literal["text"]
    text: StrictStr
    cache_control: CacheControl | None = None
    #: Citations an earlier answer carried; passed back as given.
    citations: list[dict[str, Any]] | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():  # the API answers 400: blocks must contain non-whitespace text
            raise ValueError("text must not be empty")
        return v


class Base64ImageSource(Part):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: StrictStr
    _info: media.ImageInfo | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _image(self) -> Base64ImageSource:
        n = len(self.data)
        if n > MAX_IMAGE_BASE64_CHARS:
            raise ValueError(
                f"image exceeds 5 MB maximum: {n} bytes > {MAX_IMAGE_BASE64_CHARS} bytes"
            )
        info = media.inspect_image(self.data)
        if info is None:
            raise ValueError("data is not a base64 JPEG, PNG, GIF or WebP image")
        if info.media_type != self.media_type:
            raise ValueError(f"media_type is {self.media_type} but the data is {info.media_type}")
        if max(info.width or 0, info.height or 0) > MAX_IMAGE_SIDE:
            raise ValueError(
                f"image is {info.width}x{info.height} pixels: a side exceeds {MAX_IMAGE_SIDE}"
            )
        self._info = info
        return self

    @property
    def info(self) -> media.ImageInfo | None:
        """The image's real type and size, read once at validation."""
        return self._info


class URLSource(Part):
    type: Literal["url"]
    url: StrictStr


class FileSource(Part):
    type: Literal["file"]
    file_id: StrictStr


ImageSource = Annotated[Base64ImageSource | URLSource | FileSource, Field(discriminator="type")]


class ImageBlock(Part):
    type: Literal["image"]
    source: ImageSource
    cache_control: CacheControl | None = None
    transformations: dict[str, Any] | None = None


class Base64PDFSource(Part):
    type: Literal["base64"]
    media_type: Literal["application/pdf"]
    data: StrictStr
    _pages: int | None = PrivateAttr(default=None)

    @property
    def pages(self) -> int:
        """Pages of the PDF (read from its bytes on first use, for the token estimate)."""
        if self._pages is None:
            self._pages = media.pdf_pages(media.decode_base64(self.data))
        return self._pages


class PlainTextSource(Part):
    type: Literal["text"]
    media_type: Literal["text/plain"]
    data: StrictStr


DocumentContent = Annotated[TextBlock | ImageBlock, Field(discriminator="type")]


class ContentSource(Part):
    type: Literal["content"]
    content: StrictStr | list[DocumentContent]


DocumentSource = Annotated[
    Base64PDFSource | PlainTextSource | ContentSource | URLSource | FileSource,
    Field(discriminator="type"),
]


class DocumentBlock(Part):
    type: Literal["document"]
    source: DocumentSource
    cache_control: CacheControl | None = None
    citations: CitationsConfig | None = None
    context: StrictStr | None = None
    title: StrictStr | None = None


class SearchResultBlock(Part):
    type: Literal["search_result"]
    content: list[TextBlock]
    source: StrictStr
    title: StrictStr
    cache_control: CacheControl | None = None
    citations: CitationsConfig | None = None


class ToolUseBlock(Part):
    type: Literal["tool_use"]
    id: StrictStr
    name: StrictStr
    input: dict[str, Any]
    cache_control: CacheControl | None = None
    caller: dict[str, Any] | None = None
    toolset_name: StrictStr | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _TOOL_USE_ID.match(v):
            raise ValueError("id must be letters, digits, _ or - (as the API's toolu_... ids)")
        return v


class PassThroughBlock(Loose):
    """A block agentjobs only carries: its fields beyond ``type`` go as given."""

    type: Literal[
        # inside a tool_result
        "tool_reference",
        "browser_state",
        # server tools' calls and results, in an assistant message
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
    ]
    cache_control: CacheControl | None = None


ToolResultContent = Annotated[
    TextBlock | ImageBlock | SearchResultBlock | DocumentBlock | PassThroughBlock,
    Field(discriminator="type"),
]


class ToolResultBlock(Part):
    type: Literal["tool_result"]
    tool_use_id: StrictStr
    content: StrictStr | list[ToolResultContent] | None = None
    is_error: StrictBool | None = None
    cache_control: CacheControl | None = None
    toolset_name: StrictStr | None = None


class ThinkingBlock(Part):
    """An answer's thinking, passed back unmodified (the signature proves it is)."""

    type: Literal["thinking"]
    thinking: StrictStr
    signature: StrictStr


class RedactedThinkingBlock(Part):
    type: Literal["redacted_thinking"]
    data: StrictStr


ContentBlock = Annotated[
    TextBlock
    | ImageBlock
    | DocumentBlock
    | SearchResultBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | PassThroughBlock,
    Field(discriminator="type"),
]


class Message(Part):
    role: Literal["user", "assistant"]
    content: StrictStr | list[ContentBlock]

    @field_validator("content")
    @classmethod
    def _not_empty(cls, v: str | list[ContentBlock]) -> str | list[ContentBlock]:
        if isinstance(v, list) and not v:
            raise ValueError("content must not be an empty list")
        if isinstance(v, str) and not v.strip():
            raise ValueError("content must not be empty")
        return v

    @property
    def blocks(self) -> list[ContentBlock]:
        """The content as blocks (none for string content)."""
        return self.content if isinstance(self.content, list) else []


def nested(block: Any) -> Iterator[Any]:
    """``block`` and the blocks inside it (a tool result's, a document's, a search
    result's content), depth first."""
    yield block
    inner: Any = None
    if isinstance(block, ToolResultBlock | SearchResultBlock):
        inner = block.content
    elif isinstance(block, DocumentBlock) and isinstance(block.source, ContentSource):
        inner = block.source.content
    if isinstance(inner, list):
        for b in inner:
            yield from nested(b)


def all_blocks(messages: list[Message] | None) -> Iterator[Any]:
    """Every block of ``messages``, nested ones included."""
    for m in messages or ():
        for block in m.blocks:
            yield from nested(block)

"""Content blocks: each type's fields checked as the API checks them, and its tokens.

A block may carry the fields of its request type and of its response type (the API
takes an answer's blocks back as they came, ``citations: null`` and all); any other
field is a 400. Error paths name the block type, as the API's do:
``messages.0.content.1.image.source.base64.media_type: Input should be ...``.
Server-tool blocks (``server_tool_use``, ``web_search_tool_result``...) are taken as
they are: the simulator never runs those tools.
"""

from __future__ import annotations

import re
from typing import Any

from agentjobs.simulator import media, tokens
from agentjobs.simulator.apierror import invalid

_KEYS: dict[str, frozenset[str]] = {
    "text": frozenset({"type", "text", "cache_control", "citations"}),
    "image": frozenset({"type", "source", "cache_control", "transformations"}),
    "document": frozenset({"type", "source", "cache_control", "citations", "context", "title"}),
    "search_result": frozenset(
        {"type", "content", "source", "title", "cache_control", "citations"}
    ),
    "tool_use": frozenset({"type", "id", "input", "name", "cache_control", "caller"})
    | {"toolset_name"},
    "tool_result": frozenset({"type", "tool_use_id", "content", "is_error", "cache_control"})
    | {"toolset_name"},
    "thinking": frozenset({"type", "thinking", "signature"}),
    "redacted_thinking": frozenset({"type", "data"}),
}
PASSED_THROUGH = frozenset(
    {
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "tool_reference",
    }
)
BLOCK_TYPES = frozenset(_KEYS) | PASSED_THROUGH
#: Which blocks each place takes (a message's role, or the block they are nested in).
ALLOWED: dict[str, frozenset[str]] = {
    "user": BLOCK_TYPES - {"thinking", "redacted_thinking", "tool_use", "server_tool_use"},
    "assistant": BLOCK_TYPES - {"tool_result", "tool_reference"},
    "system": frozenset({"text"}),
    "tool_result": frozenset({"text", "image", "search_result", "document", "tool_reference"}),
    "document": frozenset({"text", "image"}),
    "search_result": frozenset({"text"}),
}
CITATION_TYPES = (
    "char_location",
    "page_location",
    "content_block_location",
    "web_search_result_location",
    "search_result_location",
)
TOOL_USE_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
#: More images than this in one request, and each may be at most 2,000 px per edge.
MANY_IMAGES = 20
MANY_IMAGES_EDGE = 2000


class Media:
    """What the images of one request add up to (the many-image rule needs them all)."""

    def __init__(self) -> None:
        self.images = 0
        self.large: list[tuple[str, int]] = []  # (path, longest edge) over 2,000 px

    def check(self) -> None:
        if self.images > MANY_IMAGES and self.large:
            path, _ = self.large[0]
            raise invalid(
                f"{path}: At least one of the image dimensions exceed max allowed size for "
                f"many-image requests: {MANY_IMAGES_EDGE} pixels"
            )


def _tag(kind: Any, path: str, allowed: frozenset[str]) -> None:
    raise invalid(
        f"{path}.type: Input tag {kind!r} found using 'type' does not match any of the "
        f"expected tags: {', '.join(repr(t) for t in sorted(allowed))}"
    )


def _string(block: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
    value = block.get(key)
    if value is None:
        if required:
            raise invalid(f"{path}.{key}: Field required")
        return None
    if not isinstance(value, str):
        raise invalid(f"{path}.{key}: Input should be a valid string")
    return value


def check(block: Any, path: str, where: str, found: Media) -> int:
    """Validate one block placed in ``where`` (a role or a parent block); its tokens."""
    if not isinstance(block, dict):
        raise invalid(f"{path}: Input should be a valid dictionary")
    kind = block.get("type")
    allowed = ALLOWED[where]
    if kind not in allowed:
        if kind in BLOCK_TYPES and where in ("user", "assistant"):
            raise invalid(f"{path}: `{kind}` blocks are not allowed in `{where}` messages")
        _tag(kind, path, allowed)
    if kind in PASSED_THROUGH:
        return tokens.json_tokens(block)
    assert isinstance(kind, str)
    at = f"{path}.{kind}"
    for key in block:
        if key not in _KEYS[kind]:
            raise invalid(f"{at}.{key}: Extra inputs are not permitted")
    cc = block.get("cache_control")
    if cc is not None and (not isinstance(cc, dict) or cc.get("type") != "ephemeral"):
        raise invalid(f"{at}.cache_control.type: Input should be 'ephemeral'")
    if kind == "text":
        return _text(block, path, at)
    if kind == "image":
        return _image(block, at, found)
    if kind == "document":
        return _document(block, at, found)
    if kind == "search_result":
        return _search_result(block, at, found)
    if kind == "tool_use":
        return _tool_use(block, at)
    if kind == "tool_result":
        return _tool_result(block, at, found)
    if kind == "thinking":
        _string(block, "signature", at)
        return tokens.text_tokens(_string(block, "thinking", at) or "")
    _string(block, "data", at)  # redacted_thinking: encrypted, opaque, not counted
    return 0


def _text(block: dict[str, Any], path: str, at: str) -> int:
    text = _string(block, "text", at)
    if not text:
        raise invalid(f"{path}: text content blocks must be non-empty")
    citations = block.get("citations")
    if citations is not None:
        if not isinstance(citations, list):
            raise invalid(f"{at}.citations: Input should be a valid list")
        for i, c in enumerate(citations):
            if not isinstance(c, dict) or c.get("type") not in CITATION_TYPES:
                kind = c.get("type") if isinstance(c, dict) else None
                _tag(kind, f"{at}.citations.{i}", frozenset(CITATION_TYPES))
    return tokens.text_tokens(text)


def _source(block: dict[str, Any], at: str, kinds: tuple[str, ...]) -> tuple[dict[str, Any], str]:
    source = block.get("source")
    if source is None:
        raise invalid(f"{at}.source: Field required")
    if not isinstance(source, dict):
        raise invalid(f"{at}.source: Input should be a valid dictionary")
    kind = source.get("type")
    if kind not in kinds:
        _tag(kind, f"{at}.source", frozenset(kinds))
    return source, f"{at}.source.{kind}"


def _image(block: dict[str, Any], at: str, found: Media) -> int:
    source, sp = _source(block, at, ("base64", "url", "file"))
    found.images += 1
    if source["type"] == "url":
        _string(source, "url", sp)
        return media.IMAGE_MAX_TOKENS
    if source["type"] == "file":
        _string(source, "file_id", sp)
        return media.IMAGE_MAX_TOKENS
    declared = source.get("media_type")
    if declared not in media.IMAGE_TYPES:
        raise invalid(
            f"{sp}.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or "
            "'image/webp'"
        )
    data = _string(source, "data", sp) or ""
    if len(data) > media.MAX_IMAGE_BYTES:
        raise invalid(
            f"{sp}: image exceeds 5 MB maximum: {len(data)} bytes > {media.MAX_IMAGE_BYTES} bytes"
        )
    try:
        actual, width, height = media.sniff(media.decode(data, head_only=True))
    except media.BadMedia as exc:
        raise invalid(f"{sp}.data: {exc}") from None
    if actual != declared:
        raise invalid(
            f"{sp}.data: Image was specified using the {declared} media type, but the image "
            f"appears to be a {actual} image"
        )
    edge = max(width, height)
    if edge > media.MAX_IMAGE_EDGE:
        raise invalid(
            f"{sp}.data: At least one of the image dimensions exceed max allowed size: "
            f"{media.MAX_IMAGE_EDGE} pixels"
        )
    if edge > MANY_IMAGES_EDGE:
        found.large.append((f"{sp}.data", edge))
    return media.image_tokens(width, height)


def _document(block: dict[str, Any], at: str, found: Media) -> int:
    source, sp = _source(block, at, ("base64", "text", "content", "url", "file"))
    total = 0
    for key in ("title", "context"):
        total += tokens.text_tokens(_string(block, key, at, required=False) or "")
    citations = block.get("citations")
    if citations is not None and not isinstance(citations, dict):
        raise invalid(f"{at}.citations: Input should be a valid dictionary")
    kind = source["type"]
    if kind == "base64":
        if source.get("media_type") != "application/pdf":
            raise invalid(f"{sp}.media_type: Input should be 'application/pdf'")
        try:
            pages = media.pdf_pages(media.decode(_string(source, "data", sp) or ""))
        except media.BadMedia as exc:
            raise invalid(f"{sp}.data: {exc}") from None
        if pages > media.MAX_PDF_PAGES:
            raise invalid(f"A maximum of {media.MAX_PDF_PAGES} PDF pages may be provided.")
        return total + pages * media.PDF_PAGE_TOKENS
    if kind == "text":
        if source.get("media_type") != "text/plain":
            raise invalid(f"{sp}.media_type: Input should be 'text/plain'")
        return total + tokens.text_tokens(_string(source, "data", sp) or "")
    if kind == "content":
        content = source.get("content")
        if isinstance(content, str):
            return total + tokens.text_tokens(content)
        if not isinstance(content, list):
            raise invalid(f"{sp}.content: Input should be a valid string or list")
        for j, inner in enumerate(content):
            total += check(inner, f"{sp}.content.{j}", "document", found)
        return total
    _string(source, "url" if kind == "url" else "file_id", sp)
    # Not fetched: priced as one page, the least a PDF can be.
    return total + media.PDF_PAGE_TOKENS


def _search_result(block: dict[str, Any], at: str, found: Media) -> int:
    total = tokens.text_tokens(_string(block, "source", at) or "")
    total += tokens.text_tokens(_string(block, "title", at) or "")
    content = block.get("content")
    if content is None:
        raise invalid(f"{at}.content: Field required")
    if not isinstance(content, list):
        raise invalid(f"{at}.content: Input should be a valid list")
    for j, inner in enumerate(content):
        total += check(inner, f"{at}.content.{j}", "search_result", found)
    return total


def _tool_use(block: dict[str, Any], at: str) -> int:
    tool_id = _string(block, "id", at) or ""
    if not TOOL_USE_ID.match(tool_id):
        raise invalid(f"{at}.id: String should match pattern '{TOOL_USE_ID.pattern}'")
    name = _string(block, "name", at) or ""
    if "input" not in block:
        raise invalid(f"{at}.input: Field required")
    if not isinstance(block["input"], dict):
        raise invalid(f"{at}.input: Input should be a valid dictionary")
    return tokens.text_tokens(name) + tokens.json_tokens(block["input"]) + 3


def _tool_result(block: dict[str, Any], at: str, found: Media) -> int:
    _string(block, "tool_use_id", at)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise invalid(f"{at}.is_error: Input should be a valid boolean")
    content = block.get("content")
    total = tokens.TOOL_RESULT_OVERHEAD
    if content is None:
        return total
    if isinstance(content, str):
        return total + tokens.text_tokens(content)
    if not isinstance(content, list):
        raise invalid(f"{at}.content: Input should be a valid string or list")
    for j, inner in enumerate(content):
        total += check(inner, f"{at}.content.{j}", "tool_result", found)
    return total

"""Validation of a Messages request, with its token count, in one walk over the body.

Error messages follow the API's ``field.path: reason`` style; status codes are what
the SDK maps to exception classes (400 BadRequestError, 404 NotFoundError for an
unknown model). While walking, the prefix up to each ``cache_control`` breakpoint is
hashed (tools, then system, then messages, the order the API caches in).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from agentjobs.simulator import models, tokens
from agentjobs.simulator.apierror import ApiError, invalid

MAX_BREAKPOINTS = 4
ROLES = ("user", "assistant")
BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "container_upload",
    }
)
_COMMON = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
    | {"context_management", "output_config", "output_format"}
)
MESSAGES_FIELDS = _COMMON | {
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "stream",
    "service_tier",
    "container",
    "inference_geo",
}
COUNT_FIELDS = _COMMON


@dataclass
class Breakpoint:
    """A ``cache_control`` mark: the prefix through it, its length and lifetime."""

    tokens: int
    ttl_s: float
    prefix_hash: str


@dataclass
class Parsed:
    model: models.Model
    max_tokens: int
    input_tokens: int
    stop_sequences: list[str] = field(default_factory=list)
    breakpoints: list[Breakpoint] = field(default_factory=list)


def parse(body: Any, *, count_only: bool = False, with_cache: bool = True) -> Parsed:
    """Validate ``body`` and count its tokens; raise ApiError (400 or 404) if invalid.

    ``with_cache=False`` skips prefix hashing (count_tokens, or no cache_control in the
    raw body), which is most of the cost of a cached request.
    """
    if not isinstance(body, dict):
        raise invalid("Request body must be a JSON object")
    allowed = COUNT_FIELDS if count_only else MESSAGES_FIELDS
    for key in body:
        if key not in allowed:
            raise invalid(f"{key}: Extra inputs are not permitted")
    model = _model(body)
    max_tokens = 0 if count_only else _max_tokens(body, model)
    walk = _Walk(model.id if with_cache else None)
    total = tokens.REQUEST_OVERHEAD
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{i}.name: Field required")
            total += tokens.tool_tokens(tool)
            walk.item(tool, total)
    system = body.get("system")
    if system is not None:
        if isinstance(system, str):
            total += tokens.text_tokens(system)
            walk.item(system, total)
        elif isinstance(system, list):
            for i, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    raise invalid(f"system.{i}.type: Input should be 'text'")
                total += _block(block, f"system.{i}")
                walk.item(block, total)
        else:
            raise invalid("system: Input should be a valid string or list of text blocks")
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ROLES:
            raise invalid(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        total += tokens.MESSAGE_OVERHEAD
        walk.item(role, total)
        content = msg.get("content")
        if isinstance(content, str):
            if not content and not (role == "assistant" and i == len(messages) - 1):
                raise invalid(f"messages.{i}: text content blocks must be non-empty")
            total += tokens.text_tokens(content)
            walk.item(content, total)
        elif isinstance(content, list):
            if not content:
                raise invalid(f"messages.{i}: all messages must have non-empty content")
            for j, block in enumerate(content):
                total += _block(block, f"messages.{i}.content.{j}")
                walk.item(block, total)
        elif content is None:
            raise invalid(f"messages.{i}.content: Field required")
        else:
            raise invalid(f"messages.{i}.content: Input should be a valid string or list")
    if len(walk.breakpoints) > MAX_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(walk.breakpoints)}."
        )
    parsed = Parsed(model, max_tokens, total, breakpoints=walk.breakpoints)
    if not count_only:
        _options(body, parsed)
    return parsed


def _model(body: dict[str, Any]) -> models.Model:
    name = body.get("model")
    if name is None:
        raise invalid("model: Field required")
    if not isinstance(name, str) or not name:
        raise invalid("model: Input should be a valid string")
    model = models.resolve(name)
    if model is None:
        raise ApiError(404, f"model: {name}")
    return model


def _max_tokens(body: dict[str, Any], model: models.Model) -> int:
    value = body.get("max_tokens")
    if value is None:
        raise invalid("max_tokens: Field required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid("max_tokens: Input should be a valid integer")
    if value < 1:
        raise invalid("max_tokens: Input should be greater than or equal to 1")
    if value > model.max_output_tokens:
        raise invalid(
            f"max_tokens: {value} > {model.max_output_tokens}, which is the maximum "
            f"allowed number of output tokens for {model.id}"
        )
    return value


def _block(block: Any, path: str) -> int:
    if not isinstance(block, dict):
        raise invalid(f"{path}: Input should be a valid dictionary")
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        raise invalid(
            f"{path}.type: Input tag {kind!r} found using 'type' does not match any of the "
            f"expected tags: {', '.join(repr(t) for t in sorted(BLOCK_TYPES))}"
        )
    if kind == "text":
        text = block.get("text")
        if not isinstance(text, str):
            raise invalid(f"{path}.text: Field required")
        if not text:
            raise invalid(f"{path}: text content blocks must be non-empty")
    cc = block.get("cache_control")
    if cc is not None and (not isinstance(cc, dict) or cc.get("type") != "ephemeral"):
        raise invalid(f"{path}.cache_control.type: Input should be 'ephemeral'")
    return tokens.block_tokens(block)


def _options(body: dict[str, Any], parsed: Parsed) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if isinstance(temperature, bool) or not isinstance(temperature, int | float):
            raise invalid("temperature: Input should be a valid number")
        if not 0 <= temperature <= 1:
            raise invalid("temperature: Input should be between 0 and 1")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise invalid("stop_sequences: Input should be a list of non-empty strings")
        parsed.stop_sequences = stops
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata: Input should be a valid dictionary")
    if body.get("stream"):
        raise invalid("stream: the agentjobs simulator does not stream; omit stream")


class _Walk:
    """Hashes the request prefix item by item and records each cache breakpoint."""

    TTLS = {"5m": 300.0, "1h": 3600.0}

    def __init__(self, model_id: str | None) -> None:
        self.enabled = model_id is not None
        self.breakpoints: list[Breakpoint] = []
        self._hash = hashlib.sha256((model_id or "").encode())

    def item(self, item: Any, total: int) -> None:
        if not self.enabled:
            return
        cc = item.get("cache_control") if isinstance(item, dict) else None
        plain = {k: v for k, v in item.items() if k != "cache_control"} if cc else item
        self._hash.update(json.dumps(plain, sort_keys=True, separators=(",", ":")).encode())
        if cc:
            ttl = cc.get("ttl", "5m")
            if ttl not in self.TTLS:
                raise invalid("cache_control.ttl: Input should be '5m' or '1h'")
            self.breakpoints.append(Breakpoint(total, self.TTLS[ttl], self._hash.hexdigest()))

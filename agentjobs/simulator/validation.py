"""Validation of a Messages request, with its token count, in one walk over the body.

Error messages follow the API's ``field.path: reason`` style; status codes are what
the SDK maps to exception classes (400 BadRequestError, 404 NotFoundError for an
unknown model). While walking, the prefix up to each ``cache_control`` breakpoint is
hashed (tools, then system, then messages, the order the API caches in). Blocks are
checked by ``content``, tools by ``toolspec``, thinking by ``thinking``; here are the
rules that span messages: tool_use / tool_result pairing and thinking in tool loops.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from agentjobs.simulator import content, models, options, thinking, tokens, toolspec
from agentjobs.simulator.apierror import ApiError, invalid
from agentjobs.simulator.thinking import Thinking

MAX_BREAKPOINTS = 4
ROLES = ("user", "assistant", "system")
_COMMON = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config"}
    | {"cache_control", "speed", "diagnostics", "user_profile_id", "workspace_id"}
    | {"mcp_servers", "context_management", "output_format"}
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
_TOOL_BLOCKS = ("tool_use", "tool_result")
_NEED_TOOLS = "Requests which include `tool_use` or `tool_result` blocks must define tools."


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
    #: Shared while empty (most requests); ``_tools`` gives a request with tools its own.
    tools: toolspec.Tools = field(default_factory=lambda: toolspec.NO_TOOLS)
    thinking: Thinking | None = None
    #: ``output_config.format.schema``: the answer's text is JSON valid against it.
    output_schema: dict[str, Any] | None = None
    stream: bool = False
    #: Text of the last human turn (the last user message that is not tool results),
    #: read for tool names when custom tools are defined.
    user_text: str = ""
    #: Assistant turns with tool_use since that human turn: tool rounds already done.
    tool_rounds: int = 0


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
    parsed = Parsed(model, max_tokens, 0)
    total = tokens.REQUEST_OVERHEAD + _tools(body, parsed, walk)
    if body.get("thinking") is not None:
        parsed.thinking = thinking.parse(body["thinking"], None if count_only else max_tokens)
        if parsed.thinking is not None and parsed.tools.forced:
            raise invalid("Thinking may not be enabled when tool_choice forces tool use.")
    system = body.get("system")
    if system is not None:
        if isinstance(system, str):
            total += tokens.text_tokens(system)
            walk.item(system, total)
        elif isinstance(system, list):
            found = content.Media()
            for i, block in enumerate(system):
                total += content.check(block, f"system.{i}", "system", found)
                walk.item(block, total)
        else:
            raise invalid("system: Input should be a valid string or list of text blocks")
    total = _messages(body, parsed, walk, total)
    cc = body.get("cache_control")
    if cc is not None:
        if not isinstance(cc, dict) or cc.get("type") != "ephemeral":
            raise invalid("cache_control.type: Input should be 'ephemeral'")
        walk.mark_last(cc, total)
    if len(walk.breakpoints) > MAX_BREAKPOINTS:
        raise invalid(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(walk.breakpoints)}."
        )
    if total > model.context_window:
        raise invalid(f"prompt is too long: {total} tokens > {model.context_window} maximum")
    parsed.input_tokens = total
    parsed.breakpoints = walk.breakpoints
    parsed.output_schema = options.output_config(body)
    if not count_only:
        parsed.stop_sequences = options.sampling(body, parsed.thinking is not None)
        parsed.stream = options.stream(body)
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
    # 0 is allowed: it fills the prompt cache without generating anything.
    if value < 0:
        raise invalid("max_tokens: Input should be greater than or equal to 0")
    if value > model.max_output_tokens:
        raise invalid(
            f"max_tokens: {value} > {model.max_output_tokens}, which is the maximum "
            f"allowed number of output tokens for {model.id}"
        )
    return value


def _tools(body: dict[str, Any], parsed: Parsed, walk: _Walk) -> int:
    """Validate tools and tool_choice; the tokens of the definitions and tool prompt."""
    raw = body.get("tools")
    choice = body.get("tool_choice")
    if raw is None and choice is None:
        return 0
    parsed.tools = toolspec.Tools()
    total = 0
    if raw is not None:
        if not isinstance(raw, list):
            raise invalid("tools: Input should be a valid list")
        if raw:
            total += tokens.tool_prompt_tokens(choice if isinstance(choice, dict) else None)
        for i, tool in enumerate(raw):
            total += toolspec.check_tool(tool, i, parsed.tools)
            walk.item(tool, tokens.REQUEST_OVERHEAD + total)
        toolspec.check_unique(parsed.tools)
    toolspec.check_choice(choice, parsed.tools)
    return total


def _messages(body: dict[str, Any], parsed: Parsed, walk: _Walk, total: int) -> int:
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    thinking_on = parsed.thinking is not None
    last_assistant = -1
    if thinking_on:  # thinking sent back counts, and is checked, in the last assistant turn
        roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
        last_assistant = max((i for i, r in enumerate(roles) if r == "assistant"), default=-1)
    found = content.Media()
    pending: list[str] = []  # tool_use ids of the assistant turn just before
    seen_ids: set[str] = set()
    tool_blocks = False
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise invalid(f"messages.{i}: Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ROLES:
            raise invalid(f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'")
        total += tokens.MESSAGE_OVERHEAD
        walk.item(role, total)
        blocks = msg.get("content")
        if isinstance(blocks, str):
            last = i == len(messages) - 1
            if not blocks and not (role == "assistant" and last):
                raise invalid(f"messages.{i}: text content blocks must be non-empty")
            if role == "assistant" and last and blocks != blocks.rstrip():
                raise invalid(
                    "messages: final assistant content cannot end with trailing whitespace"
                )
            total += tokens.text_tokens(blocks)
            walk.item(blocks, total)
            blocks = [{"type": "text", "text": blocks}]
        elif isinstance(blocks, list):
            if not blocks:
                raise invalid(f"messages.{i}: all messages must have non-empty content")
            for j, block in enumerate(blocks):
                n = content.check(block, f"messages.{i}.content.{j}", role, found)
                kind = block.get("type")
                if kind == "thinking":
                    if thinking_on and not thinking.verify(block):
                        raise invalid(
                            f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
                        )
                    if not (thinking_on and i == last_assistant):
                        n = 0  # earlier turns' thinking is dropped from the context
                tool_blocks = tool_blocks or kind in _TOOL_BLOCKS
                total += n
                walk.item(block, total)
        elif blocks is None:
            raise invalid(f"messages.{i}.content: Field required")
        else:
            raise invalid(f"messages.{i}.content: Input should be a valid string or list")
        if role == "user":
            results = _pair(i, blocks, pending)
            if pending and thinking_on and i == last_assistant + 1:
                _thinking_first(last_assistant, messages[last_assistant]["content"])
            if not results:  # a human turn: a new tool loop starts here
                parsed.tool_rounds = 0
                if parsed.tools.custom:
                    parsed.user_text = _text_of(blocks)
            pending = []
        elif role == "assistant":
            ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
            for j, tool_id in enumerate(ids):
                if tool_id in seen_ids:
                    raise invalid(f"messages.{i}.content.{j}: `tool_use` ids must be unique")
                seen_ids.add(tool_id)
            if ids:
                parsed.tool_rounds += 1
            pending = pending + ids
    if tool_blocks and not parsed.tools.names:
        raise invalid(_NEED_TOOLS)
    found.check()
    return total


def _pair(i: int, blocks: list[dict[str, Any]], pending: list[str]) -> list[str]:
    """Check a user turn's tool results against the tool_use ids just before; the ids
    its leading tool_result blocks answer."""
    leading: list[str] = []
    for j, block in enumerate(blocks):
        if block.get("type") != "tool_result":
            continue
        tool_id = block["tool_use_id"]
        if j != len(leading) or tool_id not in pending:
            if j != len(leading) and tool_id in pending:
                break  # after other content: pending stays unanswered, reported below
            raise invalid(
                f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                f"blocks: {tool_id}. Each `tool_result` block must have a corresponding "
                "`tool_use` block in the previous message."
            )
        leading.append(tool_id)
    missing = [t for t in pending if t not in leading]
    if missing:
        raise invalid(
            f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(missing)}. Each `tool_use` block must have a "
            "corresponding `tool_result` block in the next message."
        )
    return leading


def _thinking_first(i: int, blocks: Any) -> None:
    first = blocks[0] if isinstance(blocks, list) else {"type": "text"}
    if first.get("type") not in ("thinking", "redacted_thinking"):
        raise invalid(
            thinking.MISSING_MESSAGE.format(path=f"messages.{i}.content.0", found=first["type"])
        )


def _text_of(blocks: list[dict[str, Any]]) -> str:
    return " ".join(b["text"] for b in blocks if b.get("type") == "text")


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
            self._mark(cc, total)

    def mark_last(self, cc: dict[str, Any], total: int) -> None:
        """Top-level ``cache_control``: a breakpoint on the request's last block."""
        if self.enabled and not (self.breakpoints and self.breakpoints[-1].tokens == total):
            self._mark(cc, total)

    def _mark(self, cc: dict[str, Any], total: int) -> None:
        ttl = cc.get("ttl", "5m")
        if ttl not in self.TTLS:
            raise invalid("cache_control.ttl: Input should be '5m' or '1h'")
        self.breakpoints.append(Breakpoint(total, self.TTLS[ttl], self._hash.hexdigest()))

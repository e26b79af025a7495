"""Typed request of ``agentjobs.complete``.

``CompleteRequest`` is validated twice: in the caller at ``.delay()`` (bad input raises
``RequestError`` and nothing is enqueued) and again in the worker, since any client can
put a message on the queue. It takes the Messages API's whole request surface (content
blocks in content.py, tools in tools.py, thinking and output format in options.py) and
sends all of it as given (``api_params``); the rules that span fields are in checks.py.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_validator,
)

from agentjobs import catalog
from agentjobs.errors import RequestError, UnknownModelError
from agentjobs.messages import checks
from agentjobs.messages.content import CacheControl, Message, Part, TextBlock
from agentjobs.messages.estimate import InputEstimate, estimate_input
from agentjobs.messages.options import OutputConfig, Thinking, ThinkingEnabled
from agentjobs.messages.tools import Tool, ToolChoice, check_tools
from agentjobs.settings import get_settings

__all__ = [
    "AUTO_MODEL",
    "CacheControl",
    "CompleteRequest",
    "Message",
    "TextBlock",
    "max_output_tokens",
    "parse_request",
]

_TENANT = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
#: ``model="auto"`` asks the router to pick a model (see routing.py).
AUTO_MODEL = "auto"
#: Fields holding API objects: sent (and queued) exactly as given.
_GIVEN = ("messages", "system", "tools", "tool_choice", "thinking", "output_config")


class CompleteRequest(BaseModel):
    """Keyword arguments of ``agentjobs.complete``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: StrictStr | None = None
    messages: list[Message] | None = None
    model: StrictStr = "haiku"
    system: StrictStr | list[TextBlock] | None = None
    max_tokens: StrictInt | None = None
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=1)
    top_p: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=1)
    top_k: StrictInt | None = Field(default=None, ge=0)
    stop_sequences: list[StrictStr] | None = Field(default=None, max_length=16)
    metadata: dict[str, Any] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Thinking | None = None
    output_config: OutputConfig | None = None
    #: Automatic prompt caching: the API marks the last cacheable block.
    cache_control: CacheControl | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    # agentjobs' own
    idempotency_key: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    tenant: StrictStr | None = None
    #: Response cache: None follows AGENTJOBS_CACHE_DEFAULT, True/False forces it.
    cache: StrictBool | None = None
    #: Prompt caching ("5m" or "1h"): breakpoints on the system prompt, the last tool
    #: definition and, once there is more than one message, the conversation so far
    #: (the last block of the last two user turns), as many as fit in the API's 4
    #: beside the caller's own (docs/cost.md).
    prompt_cache: Literal["5m", "1h"] | None = None
    #: Why this model: set at submit by the router (model="auto") or a budget
    #: downgrade, carried to the worker and recorded in the result.
    route_reason: StrictStr | None = Field(default=None, max_length=500)
    #: "sync" (one Messages API call) or "batch" (a Message Batch, half price, answered
    #: within 24 h); None: the default of the request's tenant or queue
    #: (AGENTJOBS_LANE_DEFAULTS), "sync" when it names none.
    lane: Literal["sync", "batch"] | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _scan(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> CompleteRequest:
        # Before any model is built: a deep structure must not reach a recursive walk.
        if isinstance(data, dict):
            size = checks.scan(data)
            limit = get_settings().max_request_bytes
            if size > limit:
                raise ValueError(f"request is {size} bytes, over the {limit}-byte limit")
        request: CompleteRequest = handler(data)
        return request

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str | None) -> str | None:
        if v is not None and not _TENANT.match(v):
            raise ValueError("tenant must be 1-64 characters of letters, digits, _ . : @ -")
        return v

    @field_validator("stop_sequences")
    @classmethod
    def _stops(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and not all(s.strip() for s in v):  # the API answers 400
            raise ValueError("each stop sequence must contain non-whitespace text")
        return v

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return v
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
        user_id = v.get("user_id")
        if user_id is not None and not isinstance(user_id, str):
            raise ValueError("metadata.user_id must be a string")
        return v

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v == AUTO_MODEL:
            return v
        try:
            return catalog.resolve(v).id
        except UnknownModelError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _whole(self) -> CompleteRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("prompt must not be empty")
        if self.messages is not None:
            if not self.messages:
                raise ValueError("messages must not be empty")
            if self.messages[0].role != "user":
                raise ValueError("the first message must have role 'user'")
            checks.check_tool_results(self.messages)
        if self.max_tokens is not None:
            if self.max_tokens < 1:
                raise ValueError("max_tokens must be at least 1")
            limit = max_output_tokens(self.model)
            if self.max_tokens > limit:
                raise ValueError(f"max_tokens {self.max_tokens} exceeds {self.model}'s {limit}")
        check_tools(self.tools, self.tool_choice)
        if self.temperature is not None and self.top_p is not None:
            # Every model agentjobs knows (Claude 4.5 and later) takes one or the other.
            raise ValueError("give temperature or top_p, not both: the API refuses the pair")
        self._check_thinking()
        marks = len(self.cache_ttls())
        if marks > checks.MAX_BREAKPOINTS:
            raise ValueError(
                f"{marks} cache_control breakpoints (system, tools, messages and the "
                f"top-level one together): the API allows at most {checks.MAX_BREAKPOINTS}"
            )
        return self

    def _check_thinking(self) -> None:
        if not isinstance(self.thinking, ThinkingEnabled):
            return
        budget, max_tokens = self.thinking.budget_tokens, self.effective_max_tokens()
        if budget >= max_tokens:
            raise ValueError(
                f"thinking.budget_tokens {budget} must be less than max_tokens {max_tokens}"
            )
        # What the API refuses alongside extended thinking:
        if self.temperature is not None and self.temperature != 1:
            raise ValueError("temperature may only be 1 (or unset) when thinking is enabled")
        if self.top_k is not None:
            raise ValueError("top_k cannot be set when thinking is enabled")
        if self.top_p is not None and self.top_p < 0.95:
            raise ValueError("top_p must be between 0.95 and 1 when thinking is enabled")
        if self.tool_choice is not None and self.tool_choice.type in ("any", "tool"):
            raise ValueError("thinking cannot be enabled with a tool_choice that forces tool use")

    @field_serializer(*_GIVEN)
    def _as_given(self, value: Any) -> Any:
        return _sent(value)

    # -- derived views ---------------------------------------------------------------

    @property
    def family(self) -> str:
        return catalog.resolve(self.model).family

    def input_estimate(self, chars_per_token: float) -> InputEstimate:
        """The one estimate of this request's input tokens (messages/estimate.py)."""
        return estimate_input(
            system=self.system,
            prompt=self.prompt,
            messages=self.messages,
            chars_per_token=chars_per_token,
            tools=self.tools,
            tool_choice=self.tool_choice,
        )

    def cache_ttls(self) -> list[str]:
        """The lifetime ("5m", "1h") of each prompt-cache breakpoint the request sends:
        system blocks (``prompt_cache`` marks the last), tools, message blocks, and the
        top-level ``cache_control``."""
        system = self.system if isinstance(self.system, list) else []
        if self.prompt_cache and system:
            system = system[:-1]  # the last block's mark is replaced by prompt_cache's
        ttls = checks.breakpoints(system, self.tools, self.messages)
        if self.prompt_cache and self.system is not None:
            ttls.append(self.prompt_cache)
        if self.cache_control is not None:
            ttls.append(self.cache_control.ttl or "5m")
        return ttls

    def effective_max_tokens(self) -> int:
        return self.max_tokens if self.max_tokens is not None else get_settings().default_max_tokens

    def api_messages(self) -> list[dict[str, Any]]:
        if self.messages is not None:
            return [m.as_sent() for m in self.messages]
        return [{"role": "user", "content": self.prompt}]

    def api_system(self) -> str | list[dict[str, Any]] | None:
        """The system prompt as sent, with the prompt-cache breakpoint when asked."""
        if self.system is None:
            return None
        if isinstance(self.system, str):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": self.system}]
        else:
            blocks = [b.as_sent() for b in self.system]
        if self.prompt_cache:
            cc: dict[str, str] = {"type": "ephemeral"}
            if self.prompt_cache == "1h":
                cc["ttl"] = "1h"
            blocks[-1] = {**blocks[-1], "cache_control": cc}
            return blocks
        return self.system if isinstance(self.system, str) else blocks

    def api_params(self) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create``: every field as given."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.effective_max_tokens(),
            "messages": self.api_messages(),
        }
        system = self.api_system()
        if system is not None:
            params["system"] = system
        for name in ("temperature", "top_p", "top_k", "service_tier"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.stop_sequences:
            params["stop_sequences"] = self.stop_sequences
        # The API accepts only user_id in metadata; the rest stays ours (dead letters, logs).
        if self.metadata and "user_id" in self.metadata:
            params["metadata"] = {"user_id": self.metadata["user_id"]}
        for name in ("tools", "tool_choice", "thinking", "output_config", "cache_control"):
            value = getattr(self, name)
            if value is not None:
                params[name] = _sent(value)
        if self.prompt_cache:
            self._mark_prefixes(params)
        return params

    def _mark_prefixes(self, params: dict[str, Any]) -> None:
        """``prompt_cache``'s breakpoints beyond the system prompt, in the order they
        pay: the tool definitions (resent unchanged by every step of an agent), then
        the conversation (once it has more than one message), whose prefix an agent
        resends whole at every step: the last
        block of the last user turn is written now, and the one of the user turn before
        it, which the previous step wrote, is read. Each only while the request has
        fewer than the API's 4 breakpoints (the caller's own, and the system's, count
        first); a block that already carries one is left as it is."""
        free = checks.MAX_BREAKPOINTS - len(self.cache_ttls())
        cc: dict[str, str] = {"type": "ephemeral"}
        if self.prompt_cache == "1h":
            cc["ttl"] = "1h"
        spots: list[tuple[list[dict[str, Any]], int]] = []
        tools = params.get("tools")
        if tools:
            spots.append((tools, len(tools) - 1))
        for m in params["messages"]:
            # One form for every turn, marked or not: the cached prefix of one step is
            # then the same bytes in the next, where its mark has moved on.
            if isinstance(m.get("content"), str) and m["content"]:
                m["content"] = [{"type": "text", "text": m["content"]}]
        # A single question is not resent: marking it would pay a cache write (1.25x its
        # input) for a read that never comes. A conversation is resent whole next step.
        turns = [m for m in params["messages"] if m.get("role") == "user"]
        if len(params["messages"]) == 1:
            turns = []
        for m in reversed(turns[-2:]):
            content = m.get("content")
            if isinstance(content, list) and content:
                spots.append((content, len(content) - 1))
        for blocks, i in spots:
            if free <= 0:
                return
            block = blocks[i]
            if not isinstance(block, dict) or "cache_control" in block:
                continue
            if block.get("type") in _UNCACHEABLE or (
                block.get("type") == "text" and not block.get("text")
            ):
                continue
            blocks[i] = {**block, "cache_control": dict(cc)}
            free -= 1

    def task_kwargs(self) -> dict[str, Any]:
        """The JSON-safe kwargs put on the queue (defaults dropped, model resolved)."""
        return self.model_dump(mode="json", exclude_none=True)


#: Blocks that cannot carry a cache_control breakpoint (the API refuses one there).
_UNCACHEABLE = frozenset({"thinking", "redacted_thinking"})


def _sent(value: Any) -> Any:
    if isinstance(value, Part):
        return value.as_sent()
    if isinstance(value, list):
        return [_sent(v) for v in value]
    return value


def max_output_tokens(model: str) -> int:
    if model == AUTO_MODEL:  # the router may pick any family: the smallest limit applies
        return min(m.max_output_tokens for m in catalog.models().values())
    return catalog.resolve(model).max_output_tokens


#: Parts of a pydantic error location that name a union's branch, not a field.
_BRANCH = re.compile(r"^(?:str|int|float|bool|function-\w+|.*\[.*\])$")


def _problems(exc: ValidationError) -> list[str]:
    """The errors as ``field.path: reason``, in the API's style (a block's type in the
    path, as ``messages.0.content.1.image.source.base64.data``), without the branches
    pydantic tried: content that is neither a string nor a list of valid blocks is
    reported by its blocks' problems."""
    found: list[tuple[str, str, str, bool]] = []
    for err in exc.errors(include_url=False):
        loc = err["loc"]
        where = ".".join(str(p) for p in loc if not (isinstance(p, str) and _BRANCH.match(p)))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":  # pydantic lists every tag: keep it short
            ctx = err.get("ctx") or {}
            tags = str(ctx.get("expected_tags", "")).split(", ")
            shown = ", ".join(tags[:6]) + (", ..." if len(tags) > 6 else "")
            msg = f"unknown type {ctx.get('tag')!r} (expected {shown})"
        alt = bool(loc) and loc[-1] == "str" and err["type"] == "string_type"
        found.append((where, msg, err["type"], alt))
    either = {w for w, _, _, alt in found if alt}
    problems: list[str] = []
    for where, msg, kind, alt in found:
        if alt and any(not a and (w == where or w.startswith(where + ".")) for w, _, _, a in found):
            continue  # the string branch of content given as a list
        if kind == "list_type" and where in either:
            msg = "Input should be a valid string or list"
        text = msg if not where else f"{where}: {msg}"
        if text not in problems:
            problems.append(text)
    return problems


def parse_request(kwargs: dict[str, Any]) -> CompleteRequest:
    """Validate task kwargs; a RequestError that says what is wrong, never a deep traceback."""
    try:
        return CompleteRequest.model_validate(kwargs)
    except ValidationError as exc:
        message = "; ".join(_problems(exc))
        if len(message) > 400:
            message = message[:397] + "..."
        raise RequestError("invalid agentjobs.complete request: " + message) from None

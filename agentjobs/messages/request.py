"""Typed request and result of ``agentjobs.complete``.

``CompleteRequest`` is validated twice: in the caller at ``.delay()`` (bad input raises
``RequestError`` and nothing is enqueued) and again in the worker, since any client can
put a message on the queue. ``ClaudeResult`` is the JSON dict stored in the result
backend; its field names are a public contract (ARCHITECTURE.md).
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
    field_validator,
    model_validator,
)

from agentjobs import catalog
from agentjobs.errors import RequestError, UnknownModelError
from agentjobs.messages.estimate import InputEstimate, estimate_input
from agentjobs.settings import get_settings

_TENANT = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
#: ``model="auto"`` asks the router to pick a model (see routing.py).
AUTO_MODEL = "auto"


class CacheControl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["ephemeral"] = "ephemeral"
    ttl: Literal["5m", "1h"] | None = None


class TextBlock(BaseModel):
    """The only content block agentjobs accepts: text, optionally a cache breakpoint."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: StrictStr
    cache_control: CacheControl | None = None

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():  # the API answers 400: blocks must contain non-whitespace text
            raise ValueError("text must not be empty")
        return v


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: StrictStr | list[TextBlock]

    @field_validator("content")
    @classmethod
    def _not_empty(cls, v: str | list[TextBlock]) -> str | list[TextBlock]:
        if isinstance(v, list) and not v:
            raise ValueError("content must not be an empty list")
        if isinstance(v, str) and not v.strip():
            raise ValueError("content must not be empty")
        return v


class CompleteRequest(BaseModel):
    """Keyword arguments of ``agentjobs.complete``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: StrictStr | None = None
    messages: list[Message] | None = None
    model: StrictStr = "haiku"
    system: StrictStr | list[TextBlock] | None = None
    max_tokens: StrictInt | None = None
    temperature: StrictFloat | StrictInt | None = Field(default=None, ge=0, le=1)
    stop_sequences: list[StrictStr] | None = Field(default=None, max_length=16)
    metadata: dict[str, Any] | None = None
    # agentjobs' own
    idempotency_key: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    tenant: StrictStr | None = None
    #: Response cache: None follows AGENTJOBS_CACHE_DEFAULT, True/False forces it.
    cache: StrictBool | None = None
    #: Prompt caching: mark the system prompt as a cache breakpoint ("5m" or "1h").
    prompt_cache: Literal["5m", "1h"] | None = None
    #: Why this model: set at submit by the router (model="auto") or a budget
    #: downgrade, carried to the worker and recorded in the result.
    route_reason: StrictStr | None = Field(default=None, max_length=500)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str | None) -> str | None:
        if v is not None and not _TENANT.match(v):
            raise ValueError("tenant must be 1-64 characters of letters, digits, _ . : @ -")
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
        if self.max_tokens is not None:
            if self.max_tokens < 1:
                raise ValueError("max_tokens must be at least 1")
            limit = max_output_tokens(self.model)
            if self.max_tokens > limit:
                raise ValueError(f"max_tokens {self.max_tokens} exceeds {self.model}'s {limit}")
        size = self.approx_bytes()
        limit_bytes = get_settings().max_request_bytes
        if size > limit_bytes:
            raise ValueError(f"request is {size} bytes, over the {limit_bytes}-byte limit")
        return self

    # -- derived views ---------------------------------------------------------------

    def approx_bytes(self) -> int:
        """Size of the request's text, a cheap lower bound of the JSON body size."""
        n = len(self.prompt or "") + _text_len(self.system)
        for m in self.messages or ():
            n += _text_len(m.content)
        if self.metadata:  # not sent to the API, but it travels on the queue
            n += len(json.dumps(self.metadata))
        return n

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
        )

    def effective_max_tokens(self) -> int:
        return self.max_tokens if self.max_tokens is not None else get_settings().default_max_tokens

    def api_messages(self) -> list[dict[str, Any]]:
        if self.messages is not None:
            return [m.model_dump(exclude_none=True) for m in self.messages]
        return [{"role": "user", "content": self.prompt}]

    def api_system(self) -> str | list[dict[str, Any]] | None:
        """The system prompt as sent, with the prompt-cache breakpoint when asked."""
        if self.system is None:
            return None
        if isinstance(self.system, str):
            blocks: list[dict[str, Any]] = [{"type": "text", "text": self.system}]
        else:
            blocks = [b.model_dump(exclude_none=True) for b in self.system]
        if self.prompt_cache:
            cc: dict[str, str] = {"type": "ephemeral"}
            if self.prompt_cache == "1h":
                cc["ttl"] = "1h"
            blocks[-1] = {**blocks[-1], "cache_control": cc}
            return blocks
        return self.system if isinstance(self.system, str) else blocks

    def api_params(self) -> dict[str, Any]:
        """Keyword arguments for ``client.messages.create``."""
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.effective_max_tokens(),
            "messages": self.api_messages(),
        }
        system = self.api_system()
        if system is not None:
            params["system"] = system
        if self.temperature is not None:
            params["temperature"] = self.temperature
        if self.stop_sequences:
            params["stop_sequences"] = self.stop_sequences
        # The API accepts only user_id in metadata; the rest stays ours (dead letters, logs).
        if self.metadata and "user_id" in self.metadata:
            params["metadata"] = {"user_id": self.metadata["user_id"]}
        return params

    def task_kwargs(self) -> dict[str, Any]:
        """The JSON-safe kwargs put on the queue (defaults dropped, model resolved)."""
        return self.model_dump(mode="json", exclude_none=True)


def _text_len(content: str | list[TextBlock] | None) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    return sum(len(b.text) for b in content)


def max_output_tokens(model: str) -> int:
    if model == AUTO_MODEL:  # the router may pick any family: the smallest limit applies
        return min(m.max_output_tokens for m in catalog.models().values())
    return catalog.resolve(model).max_output_tokens


def parse_request(kwargs: dict[str, Any]) -> CompleteRequest:
    """Validate task kwargs; a RequestError that says what is wrong, never a deep traceback."""
    try:
        return CompleteRequest.model_validate(kwargs)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(p) for p in err["loc"]) or "request"
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(msg if where == "request" else f"{where}: {msg}")
        raise RequestError("invalid agentjobs.complete request: " + "; ".join(problems)) from None

"""What ``complete`` returns: ``ClaudeResult`` (a public contract, ARCHITECTURE.md) and its
``Usage``, read once from the API's answer."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class CacheCreation(BaseModel):
    """How ``cache_creation_input_tokens`` split by lifetime (priced differently)."""

    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class ServerToolUse(BaseModel):
    """Server-tool requests of a call (``usage.server_tool_use``): web searches are
    billed per request, on top of tokens."""

    web_search_requests: int = 0
    web_fetch_requests: int = 0


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    #: The split of cache writes by lifetime, when the API reports it.
    cache_creation: CacheCreation | None = None
    #: Server-tool requests, when the call used any.
    server_tool_use: ServerToolUse | None = None


class ClaudeResult(BaseModel):
    """What ``complete`` returns (as a JSON dict through the result backend)."""

    id: str
    model: str
    text: str
    #: Every block of the answer as the API sent it (``tool_use`` with id, name and input;
    #: ``thinking`` with its signature; server-tool blocks), so ``{"role": "assistant",
    #: "content": content}`` goes into the next request unchanged.
    content: list[dict[str, Any]]
    stop_reason: str | None
    usage: Usage
    cost_usd: float
    latency_ms: float
    attempts: int
    cached: bool
    queue: str
    worker: str
    idempotency_key: str
    # beyond the contract: useful to operators, optional for callers
    task_id: str | None = None
    tenant: str | None = None
    limiter_wait_ms: float = 0.0
    route_reason: str | None = None
    request_id: str | None = None
    #: "batch" when answered through a Message Batch (``cost_usd`` at the batch price).
    lane: str | None = None
    #: A streamed call's time to the first content token, ms, and output tokens per
    #: second after it (None for a plain call or an answer without content).
    ttft_ms: float | None = None
    output_tokens_per_s: float | None = None

"""The one reading of an answer's usage, of a request's prompt-cache lifetime, and of a
call's price.

The result (``ClaudeResult.cost_usd``), the day's spend totals and the Prometheus
metrics all take a call's cost from :func:`cost_usd` over :func:`usage_of` and
:func:`cache_ttl`, computed once when the answer arrives (``api.client``), so they
cannot disagree.
"""

from __future__ import annotations

from typing import Any

from agentjobs import catalog
from agentjobs.messages.result import CacheCreation, ServerToolUse, Usage

_PER_TOKEN = 1e-6


def usage_of(message: Any) -> Usage:
    """The answer's ``usage`` (an SDK ``Message`` or its dict); a field the API leaves
    out or sets to None counts as 0."""
    u = message.get("usage") if isinstance(message, dict) else getattr(message, "usage", None)
    if u is None:
        return Usage()

    def field(obj: Any, name: str) -> Any:
        return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)

    split = field(u, "cache_creation")
    server = field(u, "server_tool_use")
    return Usage(
        input_tokens=field(u, "input_tokens") or 0,
        output_tokens=field(u, "output_tokens") or 0,
        cache_creation_input_tokens=field(u, "cache_creation_input_tokens") or 0,
        cache_read_input_tokens=field(u, "cache_read_input_tokens") or 0,
        cache_creation=None
        if split is None
        else CacheCreation(
            ephemeral_5m_input_tokens=field(split, "ephemeral_5m_input_tokens") or 0,
            ephemeral_1h_input_tokens=field(split, "ephemeral_1h_input_tokens") or 0,
        ),
        server_tool_use=None
        if server is None
        else ServerToolUse(
            web_search_requests=field(server, "web_search_requests") or 0,
            web_fetch_requests=field(server, "web_fetch_requests") or 0,
        ),
    )


def cache_ttl(params: dict[str, Any]) -> str:
    """``"1h"`` when the request as sent marks a one-hour prompt-cache breakpoint
    (anywhere: system, tools, messages, top level), else ``"5m"``."""
    if _marks_1h(params.get("cache_control")):
        return "1h"
    blocks: list[Any] = []
    for part in ("system", "tools"):
        value = params.get(part)
        if isinstance(value, list):
            blocks += value
    for m in params.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            blocks += content
    for b in blocks:
        if isinstance(b, dict) and _marks_1h(b.get("cache_control")):
            return "1h"
    return "5m"


def _marks_1h(cc: Any) -> bool:
    return isinstance(cc, dict) and cc.get("ttl") == "1h"


def cost_usd(model: str, usage: Usage, *, cache_ttl: str = "5m", batch: bool = False) -> float:
    """USD for one call: input, output (thinking included: the API counts it in
    ``output_tokens``), cache writes (5 m or 1 h price), cache reads, and web searches
    (per 1,000 requests).

    When ``usage.cache_creation`` gives the split of cache writes by lifetime (the API
    does), each part is priced at its own rate; otherwise every write is priced at
    ``cache_ttl``'s rate. ``batch`` applies the Message Batches discount to all of it.
    """
    price = catalog.resolve(model).price
    writes = usage.cache_creation_input_tokens
    split = usage.cache_creation
    if split is not None and (
        split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens == writes
    ):
        writes_1h = split.ephemeral_1h_input_tokens
    else:
        writes_1h = writes if cache_ttl == "1h" else 0
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + (writes - writes_1h) * price.cache_write_5m
        + writes_1h * price.cache_write_1h
        + usage.cache_read_input_tokens * price.cache_read
    ) * _PER_TOKEN
    if usage.server_tool_use is not None:
        total += usage.server_tool_use.web_search_requests * price.web_search_per_1k / 1000
    if batch:
        total *= catalog.BATCH_DISCOUNT
    return round(total, 10)

"""What a worker does with one ``complete`` task, step by step.

    validate -> call Claude (raw response) -> usage, cost -> ClaudeResult

Each step is a function of its own module; this file only orders them.
"""

from __future__ import annotations

from typing import Any

from celery import Task

from agentjobs import catalog, client
from agentjobs.cost import cost_usd
from agentjobs.schemas import AUTO_MODEL, ClaudeResult, CompleteRequest, Usage, parse_request


def execute(task: Task, kwargs: dict[str, Any]) -> dict[str, Any]:
    req = parse_request(kwargs)
    if req.model == AUTO_MODEL:
        from agentjobs.routing import choose_model

        req = choose_model(req)
    info = task.request
    key = req.idempotency_key or str(info.id)
    raw = client.create_message(req.api_params())
    return build_result(req, raw, task, key, attempts=info.retries + 1).model_dump(mode="json")


def usage_of(message: Any) -> Usage:
    u = message.usage
    return Usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_creation_input_tokens=getattr(u, "cache_creation_input_tokens", None) or 0,
        cache_read_input_tokens=getattr(u, "cache_read_input_tokens", None) or 0,
    )


def build_result(
    req: CompleteRequest,
    raw: client.RawResponse,
    task: Task,
    key: str,
    *,
    attempts: int,
    limiter_wait_ms: float = 0.0,
) -> ClaudeResult:
    msg = raw.message
    usage = usage_of(msg)
    content = [block.model_dump(mode="json", exclude_none=True) for block in msg.content]
    text = "".join(b.get("text", "") for b in content if b.get("type") == "text")
    info = task.request
    delivery = info.delivery_info or {}
    return ClaudeResult(
        id=msg.id,
        model=msg.model,
        text=text,
        content=content,
        stop_reason=msg.stop_reason,
        usage=usage,
        cost_usd=cost_usd(req.model, usage, cache_ttl=req.prompt_cache or "5m"),
        latency_ms=round(raw.latency_ms, 3),
        attempts=attempts,
        cached=False,
        queue=delivery.get("routing_key") or catalog.queue_for(req.family),
        worker=str(info.hostname),
        idempotency_key=key,
        task_id=str(info.id),
        tenant=req.tenant,
        limiter_wait_ms=round(limiter_wait_ms, 3),
        request_id=raw.request_id,
    )

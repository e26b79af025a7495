"""What a worker does with one ``complete`` task, step by step.

    idempotency claim -> validate -> cache -> budget -> call Claude (raw response)
    -> usage, cost -> ClaudeResult -> idempotency outcome; on error: retry | dead letter

Each step is a function of its own module; this file only orders them.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Task
from celery.exceptions import Retry

from agentjobs import catalog
from agentjobs.api import client
from agentjobs.limiter import admission
from agentjobs.messages.request import (
    AUTO_MODEL,
    CacheCreation,
    ClaudeResult,
    CompleteRequest,
    Usage,
    parse_request,
)
from agentjobs.reliability import idempotency, recovery
from agentjobs.spend import budget, cache, cost
from agentjobs.spend.cost import cost_usd


def execute(task: Task, kwargs: dict[str, Any]) -> dict[str, Any]:
    """One task: at most one Claude call in flight per idempotency key, its outcome kept.

    Failures go to ``recovery.failed``: a retry through the broker or a dead letter.
    The steps of one attempt are in ``call``.
    """
    claim = recovery.claim(task, kwargs)  # key: the caller's idempotency_key, else task id
    if claim.done:  # finished before: a redelivered or resubmitted task, no call
        return recovery.stored_outcome(claim.outcome or {})
    if not claim.claimed:  # another live copy is calling: look again later
        raise recovery.step_aside(task, claim)
    started_at = time.time()
    try:
        with idempotency.held(claim):  # a heartbeat renews the lease while we call
            result = call(task, kwargs, claim.key, attempts=claim.prior_attempts + 1)
    except Retry:  # a step below asked for a retry itself: let another copy claim
        idempotency.release(claim.key, claim.token)
        raise
    except Exception as exc:
        raise recovery.failed(task, kwargs, claim, exc, started_at) from exc
    return recovery.succeeded(claim, result)


def call(task: Task, kwargs: dict[str, Any], key: str, attempts: int) -> dict[str, Any]:
    """One attempt: validate, cache, budget, call Claude, result. Raises on failure."""
    req = parse_request(kwargs)
    if req.model == AUTO_MODEL:
        from agentjobs.spend.routing import choose_model

        req = choose_model(req)
    t0 = time.perf_counter()
    # response cache (issue 7): a hit, or the lease to compute while identical calls wait
    flight = cache.lookup(req)
    if flight.hit is not None:
        latency_ms = (time.perf_counter() - t0) * 1000.0
        hit = cache.hit_result(flight, req, task, key, attempts, latency_ms)
        return hit.model_dump(mode="json")
    try:
        # budget (issue 7): hold the estimated cost, or reject / downgrade / defer
        req, reservation = budget.reserve(req)
        try:
            # spend limit reached for the group really called (after routing and a
            # budget downgrade): no call
            recovery.check_pause(catalog.resolve(req.model).group)
            # global limiter (issue 4): reserve RPM+ITPM+OTPM and sleep the short wait (a
            # long one raises RateLimitedError: a retry that is not an error attempt),
            # hold a concurrency lease; settle with real usage and rate-limit headers.
            with admission.admitted(req) as admit:
                raw = client.create_message(req.api_params())
                admit.settle(raw)
            result = build_result(
                req, raw, task, key, attempts=attempts, limiter_wait_ms=admit.wait_ms
            )
            cost.record_result(result)
        finally:
            budget.release(reservation)  # after the real cost is recorded, or on failure
        out = result.model_dump(mode="json")
        flight.store(out, req)
        return out
    finally:
        flight.close()  # a failed owner lets one waiting identical call take over


def usage_of(message: Any) -> Usage:
    u = message.usage
    return Usage(
        input_tokens=u.input_tokens or 0,
        output_tokens=u.output_tokens or 0,
        cache_creation_input_tokens=getattr(u, "cache_creation_input_tokens", None) or 0,
        cache_read_input_tokens=getattr(u, "cache_read_input_tokens", None) or 0,
        cache_creation=_cache_creation(getattr(u, "cache_creation", None)),
    )


def _cache_creation(split: Any) -> CacheCreation | None:
    """The API's split of cache writes by lifetime (5 m / 1 h are priced differently)."""
    if split is None:
        return None
    return CacheCreation(
        ephemeral_5m_input_tokens=getattr(split, "ephemeral_5m_input_tokens", None) or 0,
        ephemeral_1h_input_tokens=getattr(split, "ephemeral_1h_input_tokens", None) or 0,
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
        route_reason=req.route_reason,
        request_id=raw.request_id,
    )

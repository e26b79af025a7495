"""The second half of ``POST /v1/messages``: faults, spend cap, rate limits, prompt cache,
pacing and billing, for a request already authenticated and validated.

What the answer says is ``compose``'s; how a stream is written is ``streaming``'s.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import secrets
from typing import Any

from aiohttp import web

from agentjobs.simulator import pacing, textgen
from agentjobs.simulator.apierror import ERROR_TYPES, ApiError, invalid, spend_limit_error
from agentjobs.simulator.buckets import GroupLimiter, Refusal
from agentjobs.simulator.compose import Reply, generate, int_directive
from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.promptcache import CacheUse
from agentjobs.simulator.state import Call, Dropped, State
from agentjobs.simulator.streaming import Stream
from agentjobs.simulator.validation import Parsed

# Call, Dropped and generate are re-exported: the batch lane imports them from here.
__all__ = [
    "Call",
    "Dropped",
    "answer",
    "generate",
    "rate_message",
    "request_digest",
    "respond",
]

_RATE_MESSAGE = (
    "This request would exceed your organization's rate limit of {limit} {what} per minute "
    "(model group: {group}). For details, refer to https://docs.claude.com/en/api/rate-limits."
)
_WHAT = {"requests": "requests", "input_tokens": "input tokens", "output_tokens": "output tokens"}
#: Fields that change the answer besides the ones every request hash has; included only
#: when present, so a plain request keeps the hash (and the text) it always had.
_DIGEST_EXTRAS = frozenset(
    {"tool_choice", "thinking", "output_config", "output_format", "top_p", "top_k"}
)
_msg_ids = itertools.count(1)
_msg_prefix = secrets.token_hex(6)


def rate_message(refusal: Refusal, group: str = "count_tokens") -> str:
    what = _WHAT.get(refusal.dimension, refusal.dimension)
    return _RATE_MESSAGE.format(limit=refusal.limit, what=what, group=group)


def _forced_error(value: str, sim: State) -> ApiError:
    if value == "spend":
        return spend_limit_error()
    try:
        status = int(value)
    except ValueError:
        raise invalid(f"[[sim:error={value}]]: expected a status code or 'spend'") from None
    if status not in ERROR_TYPES:
        raise invalid(f"[[sim:error={value}]]: one of {sorted(ERROR_TYPES)} or 'spend'")
    return ApiError(status, retry_after_s=1 if status == 429 else None)


def request_digest(parsed: Parsed, body: dict[str, Any]) -> str:
    """The request hash: what the answer derives from, ``x-sim-hash`` and the log's ``hash``."""
    fields = [
        parsed.model.id,
        body.get("system"),
        body["messages"],
        parsed.max_tokens,
        body.get("tools"),
        body.get("temperature"),
        body.get("stop_sequences"),
    ]
    if _DIGEST_EXTRAS.intersection(body):
        extras = {k: body[k] for k in sorted(_DIGEST_EXTRAS) if body.get(k) is not None}
        if extras:
            fields.append(extras)
    return hashlib.sha256(
        json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


async def answer(
    sim: State,
    request: web.Request,
    call: Call,
    parsed: Parsed,
    directives: dict[str, str],
    config: SimConfig,
) -> dict[str, Any] | Stream:
    """The Message for a valid request (a Stream for ``stream: true``), or an
    ApiError / Dropped."""
    stats = sim.stats
    if "error" in directives:
        raise _forced_error(directives["error"], sim)
    fault = directives.get("fault")
    if fault is not None and fault not in textgen.FAULT_KINDS:
        raise invalid(f"[[sim:fault={fault}]]: one of {', '.join(textgen.FAULT_KINDS)}")
    if fault is None:
        fault = sim.dice.fault(config)
    if fault is not None:
        call.fault = fault
        stats.faults[fault] += 1
        if fault == "529":
            raise ApiError(529)
        if fault == "500":
            raise ApiError(500)
        if fault == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise Dropped

    if config.spend_limit_usd is not None and stats.cost_usd >= config.spend_limit_usd:
        raise spend_limit_error()

    model = parsed.model
    use = sim.cache.lookup(parsed.breakpoints, model.min_cache_tokens)
    # ITPM counts uncached input and cache writes; cache reads are free of the limit.
    charged = parsed.input_tokens - use.read_tokens
    limiter = sim.limits.groups[model.group]
    refusal = limiter.admit(charged, parsed.max_tokens)
    if refusal is not None:
        stats.rate_limited_by_dimension[refusal.dimension] += 1
        raise ApiError(
            429,
            rate_message(sim.limits.shown(refusal), model.group),
            retry_after_s=sim.limits.retry_after(refusal),
        )
    sim.cache.commit(use)
    reserved = parsed.max_tokens if limiter.otpm_mode == "max_tokens" else 0
    try:
        reply = generate(call, parsed, directives, config)
    except ApiError:
        limiter.settle(0, reserved)
        raise
    pace = pacing.plan(
        sim.dice,
        config,
        sim.clock.scale,
        reply.output_tokens,
        fault,
        int_directive(directives, "latency_ms"),
    )
    failing = fault == "stream_error"
    if parsed.stream:
        # An answer that fails mid-stream is not billed; the tokens sent still count
        # against OTPM, as generated.
        message = respond(sim, call, parsed, use, reply, billed=not failing)
        return Stream(
            message,
            reply,
            pace,
            debit=_debit(limiter),
            release=lambda: limiter.settle(0, reserved),
            fail_after=reply.output_tokens // 2 if failing else None,
        )
    generated = reply.output_tokens // 2 if failing else reply.output_tokens
    try:
        await pacing.generate(pace, generated, _debit(limiter))
    finally:
        limiter.settle(0, reserved)
    if failing:
        raise ApiError(529)
    return respond(sim, call, parsed, use, reply)


def _debit(limiter: GroupLimiter) -> Any:
    return lambda n: limiter.settle(n, 0)


def respond(
    sim: State,
    call: Call,
    parsed: Parsed,
    use: CacheUse,
    result: Reply,
    *,
    price_factor: float = 1.0,
    billed: bool = True,
) -> dict[str, Any]:
    """Bill an answer (``call.usage``, ``call.cost_usd``, the stats) and render the Message.

    ``price_factor`` scales the cost: the Message Batches lane bills at half price.
    ``billed=False`` renders without billing (an answer that will fail mid-stream).
    """
    model = parsed.model
    uncached = parsed.input_tokens - use.read_tokens - use.write_tokens
    output = result.output_tokens
    usage = {
        "input_tokens": uncached,
        "output_tokens": output,
        "cache_creation_input_tokens": use.write_tokens,
        "cache_read_input_tokens": use.read_tokens,
    }
    if billed:
        stats = sim.stats
        call.usage = usage
        price = model.price
        list_price = (
            uncached * price.input
            + (use.write_tokens - use.write_1h_tokens) * price.cache_write_5m
            + use.write_1h_tokens * price.cache_write_1h
            + use.read_tokens * price.cache_read
            + output * price.output
        ) / 1_000_000
        call.cost_usd = list_price * price_factor
        stats.cost_usd += call.cost_usd
        stats.input_tokens += uncached
        stats.output_tokens += output
        stats.cache_creation_input_tokens += use.write_tokens
        stats.cache_read_input_tokens += use.read_tokens
        stats.answered(call.digest)
    message: dict[str, Any] = {
        "id": f"msg_sim{_msg_prefix}{next(_msg_ids):010x}",
        "type": "message",
        "role": "assistant",
        "model": model.id,
        "content": result.content,
        "stop_reason": result.stop_reason,
        "stop_sequence": result.stop_sequence,
        "usage": {
            **usage,
            "cache_creation": {
                "ephemeral_5m_input_tokens": use.write_tokens - use.write_1h_tokens,
                "ephemeral_1h_input_tokens": use.write_1h_tokens,
            },
            "service_tier": "standard",
        },
    }
    if result.stop_details is not None:
        message["stop_details"] = result.stop_details
    return message

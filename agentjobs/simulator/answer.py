"""The second half of ``POST /v1/messages``: faults, spend cap, rate limits, prompt cache,
latency and the answer itself, for a request already authenticated and validated."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import secrets
from typing import Any

from aiohttp import web

from agentjobs.simulator import textgen
from agentjobs.simulator.apierror import ERROR_TYPES, ApiError, invalid, spend_limit_error
from agentjobs.simulator.buckets import Refusal
from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.promptcache import CacheUse
from agentjobs.simulator.state import Call, Dropped, State
from agentjobs.simulator.validation import Parsed

# Call and Dropped are re-exported: the batch lane imports them from here.
__all__ = ["Call", "Dropped", "answer", "generate", "rate_message", "request_digest", "respond"]

_RATE_MESSAGE = (
    "This request would exceed your organization's rate limit of {limit} {what} per minute "
    "(model group: {group}). For details, refer to https://docs.claude.com/en/api/rate-limits."
)
_WHAT = {"requests": "requests", "input_tokens": "input tokens", "output_tokens": "output tokens"}
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
    return hashlib.sha256(
        json.dumps(
            [
                parsed.model.id,
                body.get("system"),
                body["messages"],
                parsed.max_tokens,
                body.get("tools"),
                body.get("temperature"),
                body.get("stop_sequences"),
            ],
            sort_keys=True,
            separators=(",", ":"),
        ).encode()
    ).hexdigest()


def _int_directive(directives: dict[str, str], key: str) -> int | None:
    value = directives.get(key)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        raise invalid(f"[[sim:{key}={value}]]: expected a number") from None


async def answer(
    sim: State,
    request: web.Request,
    call: Call,
    parsed: Parsed,
    directives: dict[str, str],
    config: SimConfig,
) -> dict[str, Any]:
    """The Message for a valid request, or an ApiError / Dropped."""
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
            rate_message(refusal, model.group),
            retry_after_s=sim.limits.retry_after(refusal),
        )
    sim.cache.commit(use)

    result = generate(call, parsed, directives, config)

    forced_latency = _int_directive(directives, "latency_ms")
    if fault == "slow":
        latency_ms = config.slow_ms
    elif forced_latency is not None:
        latency_ms = float(forced_latency)
    else:
        latency_ms = sim.dice.latency_ms(config)
    reserved = parsed.max_tokens if limiter.otpm_mode == "max_tokens" else 0
    try:
        if latency_ms > 0:
            await asyncio.sleep(latency_ms * sim.clock.scale / 1000.0)
    finally:
        # Settle even if the client went away: the tokens were generated all the same.
        limiter.settle(result.output_tokens, reserved)

    return respond(sim, call, parsed, use, result)


def generate(
    call: Call, parsed: Parsed, directives: dict[str, str], config: SimConfig
) -> textgen.Answer:
    """The answer's length and text: a function of the request hash (and directives)."""
    assert call.digest is not None
    seed = int(call.digest[:15], 16)
    wanted = textgen.output_length(
        seed,
        config.output_tokens_min,
        config.output_tokens_max,
        _int_directive(directives, "output_tokens"),
    )
    return textgen.answer(seed, wanted, parsed.max_tokens, parsed.stop_sequences)


def respond(
    sim: State,
    call: Call,
    parsed: Parsed,
    use: CacheUse,
    result: textgen.Answer,
    *,
    price_factor: float = 1.0,
) -> dict[str, Any]:
    """Bill an answer (``call.usage``, ``call.cost_usd``, the stats) and render the Message.

    ``price_factor`` scales the cost: the Message Batches lane bills at half price.
    """
    stats = sim.stats
    model = parsed.model
    uncached = parsed.input_tokens - use.read_tokens - use.write_tokens
    usage = {
        "input_tokens": uncached,
        "output_tokens": result.output_tokens,
        "cache_creation_input_tokens": use.write_tokens,
        "cache_read_input_tokens": use.read_tokens,
    }
    call.usage = usage
    price = model.price
    list_price = (
        uncached * price.input
        + (use.write_tokens - use.write_1h_tokens) * price.cache_write_5m
        + use.write_1h_tokens * price.cache_write_1h
        + use.read_tokens * price.cache_read
        + result.output_tokens * price.output
    ) / 1_000_000
    call.cost_usd = list_price * price_factor
    stats.cost_usd += call.cost_usd
    stats.input_tokens += uncached
    stats.output_tokens += result.output_tokens
    stats.cache_creation_input_tokens += use.write_tokens
    stats.cache_read_input_tokens += use.read_tokens
    stats.answered(call.digest)
    return {
        "id": f"msg_sim{_msg_prefix}{next(_msg_ids):010x}",
        "type": "message",
        "role": "assistant",
        "model": model.id,
        "content": [{"type": "text", "text": result.text}],
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

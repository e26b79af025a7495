"""The pipeline's last step: the Messages API call, and the ClaudeResult it makes.

The raw answer stays on the call (``call.raw``) for the limiter step above to settle
with; the result's usage and cost are the ones the client read once.
"""

from __future__ import annotations

from typing import Any

from anthropic.types import TextBlock

from agentjobs.api import client
from agentjobs.call import Call
from agentjobs.messages.result import ClaudeResult


def send(call: Call, next: Any) -> ClaudeResult:
    """Call Claude with the call's parameters; the result of this attempt."""
    call.raw = client.create_message(call.params)
    return build_result(call, call.raw)


def build_result(call: Call, raw: client.RawResponse) -> ClaudeResult:
    msg = raw.message
    # Each block as the API sent it (the SDK's own view of a response, fields the API
    # left out stay out, an explicit null stays), so it can be sent back unchanged: a
    # citation's ``document_title: null`` is required there, and dropping every None
    # would lose it.
    content = [block.to_dict(mode="json") for block in msg.content]
    text = "".join(b.text for b in msg.content if isinstance(b, TextBlock))
    req = call.request
    return ClaudeResult(
        id=msg.id,
        model=msg.model,
        text=text,
        content=content,
        stop_reason=msg.stop_reason,
        usage=raw.usage,
        cost_usd=raw.cost_usd,
        latency_ms=round(raw.latency_ms, 3),
        attempts=call.attempts,
        cached=False,
        queue=call.queue,
        worker=call.worker,
        idempotency_key=call.key,
        task_id=call.task_id,
        tenant=req.tenant,
        limiter_wait_ms=round(call.wait_ms, 3),
        route_reason=req.route_reason,
        request_id=raw.request_id,
        ttft_ms=None if raw.ttft_s is None else round(raw.ttft_s * 1000.0, 3),
        output_tokens_per_s=None
        if raw.output_tokens_per_s is None
        else round(raw.output_tokens_per_s, 3),
    )

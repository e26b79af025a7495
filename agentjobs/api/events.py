"""The two signals of a Messages API call, sent by ``client.create_message``.

Defined here, at the bottom, so the client can send them without knowing who listens;
the handlers that turn them into metrics are in ``ops/signals.py``.
"""

from __future__ import annotations

from celery.utils.dispatch import Signal

#: Sent before each Messages API call.
api_call_started = Signal(name="agentjobs.api_call_started", providing_args={"call_id", "params"})
#: Sent after each call: ``message`` (the parsed Message), its ``usage`` and ``cost_usd``
#: (the one reading and price of them, messages/usage.py), or ``error`` (the exception);
#: a streamed answer also its ``ttft_s`` and ``output_tokens_per_s`` (None when unknown).
api_call_finished = Signal(
    name="agentjobs.api_call_finished",
    providing_args={
        "call_id",
        "params",
        "latency_s",
        "message",
        "usage",
        "cost_usd",
        "error",
        "ttft_s",
        "output_tokens_per_s",
    },
)

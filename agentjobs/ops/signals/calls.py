"""The handlers of a Messages API call (our own signals, sent by ``client.create_message``
around every call): the call in flight, its answer's status, tokens, cost, duration."""

from __future__ import annotations

from typing import Any

from celery._state import get_current_task

from agentjobs.api.events import api_call_finished, api_call_started
from agentjobs.ops import metrics
from agentjobs.ops.signals import pending
from agentjobs.ops.signals.labels import model_label, ours, queue_label


def _call_labels(params: dict[str, Any] | None) -> tuple[str, str]:
    model = model_label((params or {}).get("model"))
    return queue_label(None, model), model


@api_call_started.connect
def _on_call_started(sender: Any = None, call_id: str = "", params: Any = None, **_: Any) -> None:
    queue, model = _call_labels(params)
    update = pending.take()  # the task's start, when the call is made in one of our tasks
    max_tokens = (params or {}).get("max_tokens")
    update.start_call(
        call_id, queue, model, max_tokens=max_tokens if isinstance(max_tokens, int) else None
    )
    update.commit()


@api_call_finished.connect
def _on_call_finished(
    sender: Any = None,
    call_id: str = "",
    params: Any = None,
    latency_s: float = 0.0,
    message: Any = None,
    usage: Any = None,
    cost_usd: float = 0.0,
    error: BaseException | None = None,
    ttft_s: float | None = None,
    output_tokens_per_s: float | None = None,
    **_: Any,
) -> None:
    queue, model = _call_labels(params)
    update = metrics.Update()
    update.finish_call(call_id, queue, model)
    update.observe("call_seconds", (queue, model), latency_s)
    if ttft_s is not None:
        update.observe("first_token_seconds", (queue, model), ttft_s)
        if output_tokens_per_s and usage is not None:
            # Kept as writing time, so the rate over any window and set of workers is
            # output tokens / seconds, not a mean of per-call rates.
            update.inc("output_seconds", (queue, model), usage.output_tokens / output_tokens_per_s)
    if message is not None:
        status = 200
    else:
        code = getattr(error, "status_code", None)
        status = code if isinstance(code, int) else 0
    update.inc("api_requests", (queue, model, str(status)))
    if status == 429:
        update.inc("rate_limited", (queue, model))
    if usage is not None:
        _count_usage(update, queue, model, usage, cost_usd)
    task = get_current_task()
    if task is not None and ours(getattr(task, "name", None)):
        pending.hold(update)  # written with the task's outcome
    else:
        update.commit()


def _count_usage(update: metrics.Update, queue: str, model: str, usage: Any, usd: float) -> None:
    for kind, n in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_creation", usage.cache_creation_input_tokens),
        ("cache_read", usage.cache_read_input_tokens),
    ):
        update.inc("tokens", (queue, model, kind), n)
    if model != "unknown":
        update.inc("cost_usd", (queue, model), usd)

"""The handlers of a task's life: published, received, started, and how it ended."""

from __future__ import annotations

import time
from typing import Any

from celery import current_task
from celery import signals as cs

from agentjobs.errors import DeadLetteredError
from agentjobs.ops import metrics
from agentjobs.ops.signals import pending
from agentjobs.ops.signals.labels import (
    FIRST_SENT_AT,
    SENT_AT,
    eta_ts,
    failure_class,
    header,
    model_label,
    ours,
    queue_label,
    request_labels,
)

# --- publishing ----------------------------------------------------------------------


@cs.before_task_publish.connect
def _on_publish(
    sender: Any = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if not ours(sender) or headers is None:
        return
    now = time.time()
    headers[SENT_AT] = now
    if headers.get(FIRST_SENT_AT) is None:
        headers[FIRST_SENT_AT] = _first_sent(headers) or now
    if int(headers.get("retries") or 0) > 0:
        return  # a retry of a task already counted
    kwargs = body[1] if isinstance(body, tuple | list) and len(body) > 1 else {}
    model = model_label(kwargs.get("model") if isinstance(kwargs, dict) else None)
    update = metrics.Update()
    update.inc("tasks_published", (queue_label(routing_key, model), model))
    update.commit()


def _first_sent(headers: dict[str, Any]) -> float | None:
    """On a retry (published from inside the task), the first publish time of that task."""
    if not current_task:  # a proxy: false outside a task
        return None
    request = current_task.request
    if getattr(request, "id", None) != headers.get("id"):
        return None
    return header(request, FIRST_SENT_AT)


# --- the worker: a task's life ---------------------------------------------------------


@cs.task_received.connect
def _on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    if request is None or not ours(getattr(request, "task_name", None)):
        return
    queue, _model = request_labels(request)
    update = metrics.Update()
    update.inc("tasks_received", (queue,))
    update.commit()


@cs.task_prerun.connect
def _on_started(sender: Any = None, task: Any = None, **_: Any) -> None:
    if task is None or not ours(task.name):
        return
    req = task.request
    queue, _model = request_labels(req)
    update = metrics.Update()
    update.inc("tasks_started", (queue,))
    sent = header(req, SENT_AT)
    if sent is not None:
        ready = max(sent, eta_ts(getattr(req, "eta", None)) or 0.0)
        update.observe("queue_wait_seconds", (queue,), time.time() - ready)
    pending.hold(update)  # written when the task's call starts, or with its outcome


def _end_to_end(update: metrics.Update, request: Any, queue: str) -> None:
    first = header(request, FIRST_SENT_AT)
    if first is not None:
        update.observe("end_to_end_seconds", (queue,), time.time() - first)


@cs.task_success.connect
def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if sender is None or not ours(sender.name):
        return
    req = sender.request
    queue, model = request_labels(req)
    update = pending.take()
    update.inc("tasks", (queue, model, "succeeded"))
    if isinstance(result, dict) and "usage" in result:
        if result.get("cached"):
            update.inc("cache_hits", (queue, model))
        else:
            update.inc("cache_misses", (queue, model))
            wait_ms = result.get("limiter_wait_ms")
            if isinstance(wait_ms, int | float):
                update.observe("limiter_wait_seconds", (queue,), wait_ms / 1000.0)
    _end_to_end(update, req, queue)
    update.commit()


@cs.task_retry.connect
def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    if sender is None or not ours(sender.name):
        return
    queue, model = request_labels(request if request is not None else sender.request)
    kind = failure_class(reason)
    update = pending.take()
    update.inc("retries", (queue, model, kind))
    if kind != "deferred":
        update.inc("errors", (queue, model, kind))
    update.commit()


@cs.task_failure.connect
def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    if sender is None or not ours(sender.name):
        return
    req = sender.request
    queue, model = request_labels(req)
    kind = failure_class(exception)
    dead = isinstance(exception, DeadLetteredError)
    update = pending.take()
    update.inc("tasks", (queue, model, "dead_lettered" if dead else "failed"))
    update.inc("errors", (queue, model, kind))
    if dead:
        update.inc("dead_lettered", (queue, model, kind))
    _end_to_end(update, req, queue)
    update.commit()


@cs.task_postrun.connect
def _on_postrun(**_: Any) -> None:
    """Any end without an outcome signal (e.g. a Reject): what the thread holds goes now."""
    pending.flush()


@cs.task_revoked.connect
def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    name = getattr(sender, "name", None) or getattr(request, "task", None)
    if not ours(name):
        return
    queue, model = request_labels(request)
    update = metrics.Update()
    update.inc("tasks", (queue, model, "revoked"))
    update.commit()


@cs.task_rejected.connect
def _on_rejected(sender: Any = None, message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    if not ours(headers.get("task")):
        return
    delivery = getattr(message, "delivery_info", None) or {}
    queue = queue_label(delivery.get("routing_key"), "unknown")
    update = metrics.Update()
    update.inc("tasks", (queue, "unknown", "rejected"))
    update.commit()


@cs.task_unknown.connect
def _on_unknown(sender: Any = None, message: Any = None, name: Any = None, **_: Any) -> None:
    """A message for a task this worker does not know: rejected, like a refused one."""
    if not ours(name):
        return
    delivery = getattr(message, "delivery_info", None) or {}
    queue = queue_label(delivery.get("routing_key"), "unknown")
    update = metrics.Update()
    update.inc("tasks", (queue, "unknown", "rejected"))
    update.commit()

"""What the handlers read off a task message or a request: its labels and times.

Label values are bounded (a known model id or ``unknown``), so a typo in a request
cannot grow the number of series.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery.exceptions import Retry

from agentjobs import catalog
from agentjobs.errors import AgentJobsError, DeadLetteredError
from agentjobs.reliability import retry

#: Message headers we add at publish (epoch seconds).
SENT_AT = "agentjobs_sent_at"
FIRST_SENT_AT = "agentjobs_first_sent_at"


def ours(name: Any) -> bool:
    """Whether a task name is one of agentjobs' tasks (others' tasks are not counted)."""
    return isinstance(name, str) and name.startswith("agentjobs.")


def model_label(model: Any) -> str:
    """A known model id, else ``unknown`` (keeps label values bounded)."""
    if not isinstance(model, str) or not model:
        return "unknown"
    try:
        return catalog.resolve(model).id
    except AgentJobsError:
        return "unknown"


def queue_label(queue: Any, model: str) -> str:
    if isinstance(queue, str) and queue:
        return queue
    try:
        return catalog.resolve(model).queue
    except AgentJobsError:
        return "unknown"


def failure_class(exc: BaseException | None) -> str:
    """The failure kind of ``retry.classify``; ``deferred`` for a retry without a failure.

    A Celery ``Retry`` and a ``DeadLetteredError`` are unwrapped to the failure that
    caused them (``Retry.exc``, else ``__cause__``). A retry with no cause (a copy
    stepping aside, a limiter deferral) is ``deferred``: not an error.
    """
    if isinstance(exc, Retry | DeadLetteredError):
        inner = getattr(exc, "exc", None)
        cause = inner if isinstance(inner, BaseException) else exc.__cause__
        if cause is None:
            return "deferred" if isinstance(exc, Retry) else "unknown"
        exc = cause
    if exc is None:
        return "unknown"
    return retry.classify(exc).kind


def request_labels(request: Any) -> tuple[str, str]:
    """(queue, model) of a task request (a Context or a worker Request)."""
    kwargs = getattr(request, "kwargs", None) or {}
    model = model_label(kwargs.get("model") if isinstance(kwargs, dict) else None)
    delivery = getattr(request, "delivery_info", None) or {}
    return queue_label(delivery.get("routing_key"), model), model


def header(request: Any, name: str) -> float | None:
    """A time header of ours (epoch seconds) from a request or its message headers."""
    value = getattr(request, name, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def eta_ts(eta: Any) -> float | None:
    if not eta:
        return None
    if isinstance(eta, datetime):
        return eta.timestamp()
    try:
        return datetime.fromisoformat(str(eta)).timestamp()
    except ValueError:
        return None

"""Traces and log context of the task path: the handlers that feed ``agentjobs.telemetry``.

Spans (when tracing is on, ``telemetry/trace.py``), for agentjobs' tasks: a producer
span at each publish (``apply_async/<task>``), whose context goes into the message
headers (W3C ``traceparent``, or what OTEL_PROPAGATORS names), and a consumer span per
task run (``run/<task>``) under the context the message carried, with agentjobs'
fields at its end (key, queue, attempts, cost, outcome, failure kind). Each API call's
client span is opened by ``api/client.py`` under it, each agent step's and tool call's
by the loop. Names and ``messaging.*`` attributes follow OpenTelemetry's Celery
instrumentation, so traces look the same as a project's other tasks'.

Why not that instrumentation itself: it keys a running task's span by task id alone,
and agentjobs runs two copies of one task id at once by design (a retry published with a
short countdown starts before the attempt that published it has ended; a redelivered
copy waits on the idempotency lease while the first runs): the first copy's end then
closes the second's span and drops its own. Here each span is kept by its thread. A
project that instruments Celery itself (``CeleryInstrumentor``) keeps its spans, and
these are not made, so no task is traced twice.

Log context (``telemetry/logs.py``): the task's id, idempotency key, queue and session
bound when it starts, its failure kind when it fails or retries, unbound when it ends;
the filter and the format of AGENTJOBS_LOG_FORMAT put on the handlers Celery's own
logging setup made (a project that sets logging up itself, ``setup_logging``
connected, keeps its handlers: ``logs.install(handler)`` is its one call).
"""

from __future__ import annotations

import contextvars
import logging
import threading
from typing import Any

from celery import signals as cs

from agentjobs.ops.signals.labels import failure_class, ours
from agentjobs.telemetry import logs, trace

log = logging.getLogger(__name__)

logs.classify = failure_class
logs.trace_ids = trace.current_ids

#: Per thread: spans open between two signals, by (what, task id).
_open = threading.local()


def _spans() -> dict[tuple[str, str], list[trace.Opened]]:
    found: dict[tuple[str, str], list[trace.Opened]] | None = getattr(_open, "spans", None)
    if found is None:
        found = _open.spans = {}
    return found


def _theirs() -> bool:
    """Whether the project instruments Celery itself (its spans, not ours)."""
    try:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
    except ImportError:
        return False
    return bool(CeleryInstrumentor().is_instrumented_by_opentelemetry)


def _traced(name: Any) -> bool:
    return ours(name) and trace.enabled() and not _theirs()


# --- publishing ----------------------------------------------------------------------


@cs.before_task_publish.connect
def _on_publish(
    sender: Any = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    if headers is None or not _traced(sender):
        return
    task_id = str(headers.get("id"))
    opened = trace.open_span(
        f"apply_async/{sender}",
        kind="producer",
        **{
            "celery.action": "apply_async",
            "celery.task_name": sender,
            "messaging.system": "celery",
            "messaging.message.id": task_id,
            "messaging.destination.name": routing_key,
        },
    )
    if opened is not None:
        trace.inject(headers)  # the producer span's context, for the worker
        _spans().setdefault(("publish", task_id), []).append(opened)


@cs.after_task_publish.connect
def _on_published(headers: dict[str, Any] | None = None, **_: Any) -> None:
    stack = _spans().get(("publish", str((headers or {}).get("id"))))
    if stack:
        trace.close_span(stack.pop())


# --- the task's span -----------------------------------------------------------------


@cs.task_prerun.connect(dispatch_uid="agentjobs.telemetry.run_span")
def _on_run(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    if task is None or task_id is None or not _traced(task.name):
        return
    req = task.request
    headers = getattr(req, "headers", None) or {}
    carrier = {}
    for name in trace.fields():
        value = getattr(req, name, None) or headers.get(name)
        if isinstance(value, str):
            carrier[name] = value
    delivery = getattr(req, "delivery_info", None) or {}
    opened = trace.open_span(
        f"run/{task.name}",
        kind="consumer",
        carrier=carrier,
        **{
            "celery.action": "run",
            "celery.task_name": task.name,
            "celery.retries": getattr(req, "retries", None) or None,
            "celery.hostname": getattr(req, "hostname", None),
            "messaging.system": "celery",
            "messaging.message.id": task_id,
            "messaging.destination.name": delivery.get("routing_key"),
        },
    )
    if opened is not None:
        _spans().setdefault(("run", task_id), []).append(opened)


def _run_span(task_id: Any) -> trace.Opened | None:
    stack = _spans().get(("run", str(task_id)))
    return stack[-1] if stack else None


@cs.task_postrun.connect(dispatch_uid="agentjobs.telemetry.run_span_end")
def _on_run_end(task_id: str | None = None, **_: Any) -> None:
    key = ("run", str(task_id))
    stack = _spans().get(key)
    if stack:
        trace.close_span(stack.pop())
        if not stack:
            del _spans()[key]


# --- the task's log fields ---------------------------------------------------------------

#: Per thread: task id -> the context tokens to undo when it ends.
_bound = threading.local()


def _tokens() -> dict[str, list[contextvars.Token[Any]]]:
    found: dict[str, list[contextvars.Token[Any]]] | None = getattr(_bound, "tokens", None)
    if found is None:
        found = _bound.tokens = {}
    return found


@cs.task_prerun.connect
def _on_prerun(task_id: str | None = None, task: Any = None, kwargs: Any = None, **_: Any) -> None:
    if task is None or task_id is None or not ours(task.name):
        return
    req = task.request
    kw = kwargs if isinstance(kwargs, dict) else {}
    delivery = getattr(req, "delivery_info", None) or {}
    tokens = logs.bind(
        logs.texts_of(kw),
        task_id=task_id,
        idempotency_key=_key(task.name, task_id, kw),
        queue=delivery.get("routing_key"),
        session_id=kw.get("session_id"),
    )
    _tokens().setdefault(task_id, []).extend(tokens)


def _key(name: str, task_id: str, kw: dict[str, Any]) -> str:
    """The idempotency key the task's call runs under: the caller's, else the task id;
    an agent step's ``session:n``, a tool call's ``session:n:tool_use_id``."""
    if kw.get("idempotency_key"):
        return str(kw["idempotency_key"])
    session, n = kw.get("session_id"), kw.get("n")
    if session and n is not None:
        use = kw.get("tool_use_id")
        return f"{session}:{n}:{use}" if use else f"{session}:{n}"
    return task_id


def _fail(task_id: Any, kind: str) -> None:
    if isinstance(task_id, str):
        _tokens().setdefault(task_id, []).extend(logs.bind(failure_kind=kind))


@cs.task_postrun.connect
def _on_postrun(task_id: str | None = None, **_: Any) -> None:
    tokens = _tokens().pop(task_id, None) if task_id else None
    if tokens:
        logs.unbind(tokens)


# --- the task span's fields at its end ---------------------------------------------------


def _span_fields(outcome: str, kind: str | None = None) -> dict[str, Any]:
    bound = logs.current()
    return {
        "agentjobs.outcome": outcome,
        "agentjobs.idempotency_key": bound.get("idempotency_key"),
        "agentjobs.queue": bound.get("queue"),
        "agentjobs.session_id": bound.get("session_id"),
        "agentjobs.failure_kind": kind,
    }


@cs.task_success.connect
def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if sender is None or not ours(sender.name) or not trace.enabled():
        return
    fields = _span_fields("succeeded")
    if isinstance(result, dict):
        for name in ("attempts", "cached", "cost_usd", "lane", "model"):
            fields[f"agentjobs.{name}"] = result.get(name)
    trace.set_attributes(**fields)


@cs.task_retry.connect
def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    if sender is None or not ours(sender.name):
        return
    kind = failure_class(reason)
    _fail(getattr(request, "id", None) or sender.request.id, kind)
    trace.set_attributes(**_span_fields("retried", kind))


@cs.task_failure.connect
def _on_failure(
    sender: Any = None, task_id: Any = None, exception: BaseException | None = None, **_: Any
) -> None:
    if sender is None or not ours(sender.name):
        return
    kind = failure_class(exception)
    _fail(task_id, kind)
    dead = getattr(exception, "dead_letter_id", None)
    fields = _span_fields("dead_lettered" if dead else "failed", kind)
    fields["agentjobs.dead_letter"] = dead
    trace.set_attributes(**fields)
    if exception is not None:
        trace.set_error(exception)


# --- Celery's logging setup --------------------------------------------------------------


@cs.after_setup_logger.connect
@cs.after_setup_task_logger.connect
def _on_logging_setup(logger: logging.Logger | None = None, **_: Any) -> None:
    """Celery set the worker's logging up (no ``setup_logging`` receiver of the
    project's): the handlers it made (their formatter is Celery's) get the filter and
    the format; a handler the project had put there before keeps its format, and gets
    the filter (the fields as record attributes, and the redaction)."""
    from celery.utils.log import ColorFormatter

    for handler in logger.handlers if logger is not None else ():
        if isinstance(handler.formatter, ColorFormatter | logs.TextFormatter | logs.JsonFormatter):
            logs.install(handler)
        else:
            logs.filter_only(handler)

"""Traces and log context of the task path: the handlers that feed ``agentjobs.telemetry``.

Spans (when tracing is on, ``telemetry/trace.py``): the publish and task spans, and the
trace context carried in the message headers from ``.delay()`` to the worker, are
OpenTelemetry's Celery instrumentation (``opentelemetry-instrumentation-celery``, in
the ``[otel]`` extra): installed here with agentjobs' tracer provider when tracing
turns on, unless the application instrumented Celery itself. Maintained upstream, it
names spans as every Celery user's traces do (``apply_async/<task>``, ``run/<task>``)
and covers the user's own tasks too. On top, agentjobs' fields on the task span at its
end (key, queue, attempts, cost, outcome, failure kind); each API call's client span is
opened by ``api/client.py`` under it, each agent step's and tool call's by the loop.

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

# --- the Celery instrumentation ----------------------------------------------------------

#: The provider agentjobs instrumented Celery with (None: not by agentjobs).
_instrumented_with: Any = None
_instrument_lock = threading.Lock()


def _instrument() -> None:
    global _instrumented_with
    try:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
    except ImportError:
        log.warning(
            "OpenTelemetry: no task spans (opentelemetry-instrumentation-celery is not "
            "installed: pip install 'agentjobs[otel]'); API calls are traced alone"
        )
        return
    provider = trace.tracer_provider()
    with _instrument_lock:
        instrumentor = CeleryInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            if _instrumented_with is None or _instrumented_with is provider:
                return  # the application's own instrumentation, or ours already
            instrumentor.uninstrument()  # ours, with a provider given up since (trace.use)
        instrumentor.instrument(tracer_provider=provider)
        _instrumented_with = provider


def uninstrument() -> None:
    """Take agentjobs' Celery instrumentation off (a test's provider given up); the
    application's own is left alone. The next time tracing turns on installs it again."""
    global _instrumented_with
    with _instrument_lock:
        if _instrumented_with is None:
            return
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().uninstrument()
        _instrumented_with = None


trace.when_enabled(_instrument)


@cs.worker_init.connect
def _on_worker_init(**_: Any) -> None:
    # Decided before the first task, so that its task span is not missed.
    trace.enabled()


@cs.before_task_publish.connect
def _on_publish(headers: dict[str, Any] | None = None, **_: Any) -> None:
    # The instrumentation (connected after this handler) injects its publish span's
    # context; this covers a publish before it is installed (the first one in a process
    # whose provider was set late), so the task still continues the caller's trace.
    if headers is not None and trace.enabled() and "traceparent" not in headers:
        trace.inject(headers)


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

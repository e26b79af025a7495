"""Spans of the task path, through OpenTelemetry when it is installed and configured.

    with trace.span("invoke_agent support", **{"agentjobs.session_id": sid}):
        ...
        trace.set_attributes(**{"gen_ai.usage.output_tokens": 42})  # known at the end

Without ``opentelemetry-api`` installed (``pip install agentjobs[otel]`` brings it), or
with tracing off, ``span`` yields None after one cached check (as cheap as an empty
context manager): nothing here imports OpenTelemetry until a span is asked for.

On or off (``AGENTJOBS_OTEL``, default ``auto``): ``auto`` records when the process has
a tracer provider, set by the application (``trace.set_tracer_provider``, or
``opentelemetry-instrument``) or built here from the standard ``OTEL_*`` variables
(``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_ENDPOINT``, ...; ``setup.py``);
``on`` builds one from them even when none names an exporter (the SDK's default, OTLP);
``off`` records nothing, whatever else is set. ``OTEL_SDK_DISABLED=true`` is off too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

#: Instrumentation scope of agentjobs' spans.
SCOPE = "agentjobs"

#: Attribute values OpenTelemetry takes (others are stringified, None dropped).
_PLAIN = (str, bool, int, float)

_lock = threading.Lock()
#: None: not decided yet; False: no tracing in this process; else the tracer.
_tracer: Any = None
#: A provider given by ``use`` (tests, or an app that keeps its own off the global).
_provider: Any = None
#: With ``auto`` and no provider yet, when to look again (monotonic seconds; 0: never):
#: an application may set its provider after its first log line or publish.
_recheck_at = 0.0
_RECHECK_S = 1.0


def _get() -> Any:
    t = _tracer
    if t is None or (t is False and _recheck_at and time.monotonic() >= _recheck_at):
        return _decide()
    return t


def _decide() -> Any:
    """The tracer spans go to, or False (decided once per process; ``reset`` forgets)."""
    global _tracer, _recheck_at
    with _lock:
        if _tracer is not None and not (_tracer is False and _recheck_at):
            return _tracer
        _recheck_at = 0.0
        try:
            from opentelemetry import trace as otel
        except ImportError:
            _tracer = False
            return False
        from agentjobs.telemetry import setup

        if _provider is not None:
            _tracer = _provider.get_tracer(SCOPE, setup.version())
        elif setup.enabled() and setup.configure():
            _tracer = otel.get_tracer(SCOPE, setup.version())
        else:
            _tracer = False
            if setup.may_turn_on():
                _recheck_at = time.monotonic() + _RECHECK_S
        return _tracer


def enabled() -> bool:
    """Whether spans are recorded in this process."""
    return _get() is not False


def use(provider: Any) -> None:
    """Send agentjobs' spans to ``provider`` (a TracerProvider) instead of the global one,
    whatever the settings say; ``use(None)`` goes back to the settings. For tests (the
    SDK's InMemorySpanExporter) and apps that keep their provider off the global."""
    global _provider, _tracer, _recheck_at
    with _lock:
        _provider = provider
        _tracer, _recheck_at = None, 0.0


def reset() -> None:
    """Decide again at the next span (tests that change the settings call this)."""
    global _tracer, _recheck_at
    with _lock:
        _tracer, _recheck_at = None, 0.0


def tracer_provider() -> Any:
    """The provider spans go to (for instrumentations such as Celery's), or None."""
    if not enabled():
        return None
    if _provider is not None:
        return _provider
    from opentelemetry import trace as otel

    return otel.get_tracer_provider()


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attributes.items():
        if value is None:
            continue
        if isinstance(value, _PLAIN):
            out[key] = value
        elif isinstance(value, list | tuple) and all(isinstance(v, _PLAIN) for v in value):
            out[key] = list(value)
        else:
            out[key] = str(value)
    return out


@contextmanager
def span(name: str, kind: str = "internal", **attributes: Any) -> Iterator[Any]:
    """A span ``name`` under the current context, current inside the block, with
    ``attributes`` (None values left out; dotted names via ``**{"a.b": v}``).

    ``kind`` is ``internal``, ``client``, ``server``, ``producer`` or ``consumer``. An
    exception leaving the block is recorded on the span (status ERROR, ``error.type``)
    and raised on. Yields the OpenTelemetry span, or None when tracing is off.
    """
    t = _get()
    if t is False:
        yield None
        return
    from opentelemetry.trace import SpanKind, Status, StatusCode

    with t.start_as_current_span(
        name,
        kind=SpanKind[kind.upper()],
        attributes=_clean(attributes),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            # Recorded by type and message only: a traceback's locals could hold a prompt.
            if current.is_recording() and not current.attributes.get("error.type"):
                current.set_attribute("error.type", error_type(exc))
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


class Opened:
    """A span started by ``open_span``, current until ``close_span``."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: Any) -> None:
        self.span, self.token = span, token


def open_span(
    name: str, kind: str = "internal", carrier: Mapping[str, Any] | None = None, **attributes: Any
) -> Opened | None:
    """Start a span and make it current until ``close_span`` (for a span that begins in
    one signal handler and ends in another, on the same thread). Its parent is the
    context in ``carrier`` (from ``inject``, e.g. a message's headers) when it holds one,
    else the current span. None when tracing is off."""
    t = _get()
    if t is False:
        return None
    from opentelemetry import context, propagate
    from opentelemetry import trace as otel
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(dict(carrier)) if carrier else None
    if parent is not None and not otel.get_current_span(parent).get_span_context().is_valid:
        parent = None  # nothing carried: under the current span
    started = t.start_span(
        name, context=parent, kind=SpanKind[kind.upper()], attributes=_clean(attributes)
    )
    token = context.attach(otel.set_span_in_context(started, parent))
    return Opened(started, token)


def close_span(opened: Opened | None, error: BaseException | None = None) -> None:
    """End a span of ``open_span`` (ERROR with ``error.type`` when ``error`` is given)
    and make its parent current again."""
    if opened is None:
        return
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode

    if error is not None and opened.span.is_recording():
        opened.span.set_attribute("error.type", error_type(error))
        opened.span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    try:
        context.detach(opened.token)
    finally:
        opened.span.end()


def error_type(exc: BaseException) -> str:
    """``error.type`` of an exception: its class's qualified name, as the spec suggests."""
    cls = type(exc)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def set_attributes(**attributes: Any) -> None:
    """Set attributes on the current span (e.g. usage, known at the end); no-op when off."""
    t = _get()
    if t is False:
        return
    from opentelemetry import trace as otel

    current = otel.get_current_span()
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def set_error(exc: BaseException) -> None:
    """Mark the current span failed: status ERROR, ``error.type`` (no message: it could
    quote a request); no-op when off."""
    t = _get()
    if t is False:
        return
    from opentelemetry import trace as otel
    from opentelemetry.trace import Status, StatusCode

    current = otel.get_current_span()
    if current.is_recording():
        current.set_attribute("error.type", error_type(exc))
        current.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def add_event(name: str, **attributes: Any) -> None:
    """An event on the current span (e.g. a retry scheduled); no-op when off."""
    t = _get()
    if t is False:
        return
    from opentelemetry import trace as otel

    current = otel.get_current_span()
    if current.is_recording():
        current.add_event(name, _clean(attributes))


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span as hex, for log lines; None when off."""
    t = _get()
    if t is False:
        return None
    from opentelemetry import trace as otel

    ctx = otel.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def fields() -> tuple[str, ...]:
    """The header names the propagator writes (``traceparent``, ...); () when off."""
    if _get() is False:
        return ()
    from opentelemetry import propagate

    return tuple(sorted(propagate.get_global_textmap().fields))


def inject(carrier: dict[str, Any]) -> None:
    """Write the current context into ``carrier`` (message headers, a session record):
    W3C ``traceparent`` by default, or what OTEL_PROPAGATORS names. No-op when off."""
    t = _get()
    if t is False:
        return
    from opentelemetry import propagate

    propagate.inject(carrier)


@contextmanager
def attached(carrier: Mapping[str, Any] | None) -> Iterator[None]:
    """Make the context carried in ``carrier`` (from ``inject``) current in the block, so
    spans started there continue that trace. No-op when off or nothing is carried."""
    t = _get()
    if t is False or not carrier:
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        context.detach(token)

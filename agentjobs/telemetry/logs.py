"""Structured log lines: the running task's fields on every record, a JSON format, and
no prompt text or API key in what is written (unless AGENTJOBS_LOG_PROMPTS asks).

The fields (``FIELDS``) live in a context variable, set when a task starts and reset
when it ends (``ops/signals/telemetry.py``), so every record logged in between, by
agentjobs, Celery or the user's code, in the task's thread, carries them. A
``ContextFilter`` on a handler copies them onto each record (``%(task_id)s`` works in
any format string) and redacts; ``install`` puts it, and the format of
AGENTJOBS_LOG_FORMAT, on handlers: the worker's own (Celery's logging setup, which
agentjobs leaves in place) or a project's (``install(handler)``).

Redaction (off with AGENTJOBS_LOG_PROMPTS=true): the API key (ANTHROPIC_API_KEY,
ANTHROPIC_AUTH_TOKEN) anywhere in a line; the running task's prompt texts (``secrets``,
bound at task start), whole or their head and tail, as a truncated repr shows them;
the anthropic SDK's DEBUG line of each request keeps the body's options and drops its
text (an agent step's texts are not in its task's arguments); and the lines of Celery
that print a task's arguments or return value (the answer) keep the ids and drop the
text. JSON lines are written with the standard library (no
extra dependency for a core feature); python-json-logger's formatter would do as well.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from agentjobs.settings import get_settings

#: What a record of the task path carries (None when unknown, e.g. no session).
FIELDS = ("task_id", "idempotency_key", "queue", "session_id", "failure_kind")
#: With tracing on, the ids that join a line to its span.
TRACE_FIELDS = ("trace_id", "span_id")

REDACTED = "[redacted]"
_KEY_VARS = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")
#: A text shorter than this is not a secret worth a scan (a model name, "yes").
_MIN_SECRET = 12
#: Twice the run of a text's head or tail that is taken for the text (a truncated repr).
_PIECE = 40
#: Keys of task kwargs whose strings are ids, names or options, never prompt text (an
#: agent step's ``agent``, a tool call's ``name`` and ``tool_use_id`` among them: the
#: task names in the worker's own lines carry them).
_NOT_TEXT = frozenset(
    {
        *("model", "idempotency_key", "tenant", "lane", "cache", "queue", "session_id"),
        *("type", "agent", "name", "tool_use_id"),
    }
)
#: Keys of a task's return value (a ClaudeResult, an agent step) that hold text.
_TEXT_KEYS = frozenset({"text", "content", "output", "transcript", "input", "messages"})

_fields: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "agentjobs_log_fields", default=MappingProxyType({})
)
_secrets: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "agentjobs_log_secrets", default=()
)

#: exception -> failure kind, for a record logged while an exception is handled and no
#: kind is bound yet (registered by ops/signals/telemetry.py: ``retry.classify``).
classify: Callable[[BaseException], str] | None = None
#: () -> (trace id, span id) or None (registered there too: ``trace.current_ids``).
trace_ids: Callable[[], tuple[str, str] | None] | None = None


# --- the task's fields -------------------------------------------------------------------


def bind(secrets: Iterable[str] = (), **fields: Any) -> tuple[contextvars.Token[Any], ...]:
    """Add ``fields`` (and the texts to keep out of lines) to the current context; the
    tokens undo it (``unbind``)."""
    merged = {**_fields.get(), **{k: v for k, v in fields.items() if v is not None}}
    tokens: tuple[contextvars.Token[Any], ...] = (_fields.set(merged),)
    found = tuple(s for s in secrets if len(s) >= _MIN_SECRET)
    if found:
        tokens += (_secrets.set(_secrets.get() + found),)
    return tokens


def unbind(tokens: Iterable[contextvars.Token[Any]]) -> None:
    for token in reversed(list(tokens)):
        token.var.reset(token)


def current() -> dict[str, Any]:
    """The fields bound now."""
    return dict(_fields.get())


def texts_of(value: Any, limit: int = 64) -> list[str]:
    """The strings of a task's arguments that may be prompt text (ids and options left
    out), at most ``limit``."""
    out: list[str] = []

    def walk(v: Any, key: str | None) -> None:
        if len(out) >= limit or key in _NOT_TEXT:
            return
        if isinstance(v, str):
            if len(v) >= _MIN_SECRET:
                out.append(v)
        elif isinstance(v, Mapping):
            for k, item in v.items():
                walk(item, str(k))
        elif isinstance(v, list | tuple):
            for item in v:
                walk(item, key)

    walk(value, None)
    return out


# --- redaction ---------------------------------------------------------------------------


def _api_keys() -> list[str]:
    return [v for v in (os.environ.get(n) for n in _KEY_VARS) if v and len(v) >= 8]


def scrub(text: str) -> str:
    """``text`` without the API key and the running task's prompt texts."""
    if get_settings().log_prompts:
        return text
    for key in _api_keys():
        text = text.replace(key, REDACTED)
    for secret in _secrets.get():
        text = _without(text, secret)
    return text


def _without(text: str, secret: str) -> str:
    """``text`` with ``secret`` gone: whole, and any run of at least ``_PIECE // 2``
    characters of its head or tail (a repr cut to its first or last characters)."""
    if secret in text:
        text = text.replace(secret, REDACTED)
    n = _PIECE // 2
    head, tail = secret[:n], secret[-n:]
    i = text.find(head)
    while i != -1:  # a prefix of the secret: as far as it goes on
        j = n
        while j < len(secret) and i + j < len(text) and text[i + j] == secret[j]:
            j += 1
        text = text[:i] + REDACTED + text[i + j :]
        i = text.find(head, i + len(REDACTED))
    i = text.find(tail)
    while i != -1:  # a suffix: as far as it goes back
        start, k = i, len(secret) - n
        while k > 0 and start > 0 and text[start - 1] == secret[k - 1]:
            start, k = start - 1, k - 1
        text = text[:start] + REDACTED + text[i + n :]
        i = text.find(tail, start + len(REDACTED))
    return text


def _summary(value: Any) -> Any:
    """A task's return value without its text (ids, usage, status stay)."""
    if isinstance(value, Mapping):
        return {k: (REDACTED if k in _TEXT_KEYS else v) for k, v in value.items()}
    return REDACTED


def _redact_celery(record: logging.LogRecord) -> None:
    """Celery's lines that print a task's arguments or result, without them."""
    data = getattr(record, "data", None)
    if isinstance(data, dict):  # celery.app.trace and worker.request: extra={"data": ...}
        record.data = {
            k: (REDACTED if k in ("args", "kwargs") else v)
            for k, v in data.items()
            if k != "return_value"
        }
    args = record.args
    if isinstance(args, Mapping) and ("return_value" in args or "kwargs" in args):
        fixed = dict(args)
        if "return_value" in fixed:  # "Task ... succeeded in ...s: %(return_value)s"
            fixed["return_value"] = _summary(fixed["return_value"])
        for k in ("args", "kwargs"):
            if k in fixed:
                fixed[k] = REDACTED
        record.args = fixed
    elif record.name == "celery.pool" and str(record.msg).startswith("TaskPool: Apply"):
        record.args = tuple(REDACTED for _ in args) if isinstance(args, tuple) else None


#: Keys of a Messages request body that hold no text of the request: what the SDK's
#: "Request options" line keeps of its ``json_data``.
_BODY_PLAIN = frozenset(
    {"model", "max_tokens", "stream", "temperature", "top_p", "top_k", "service_tier", "speed"}
)


def _redact_sdk(record: logging.LogRecord) -> None:
    """The anthropic SDK's DEBUG line of each request's options, without the body's text.

    Only the running task's own texts are known to ``scrub``, and an agent step's task
    has none of them in its arguments (the conversation, the system prompt and the tool
    results live in the session's record): this line, which prints the whole body, is
    cut by its structure instead, whatever task (or none) made the call."""
    args = record.args
    options = args[0] if isinstance(args, tuple) and len(args) == 1 else args
    if not isinstance(options, Mapping) or not isinstance(options.get("json_data"), Mapping):
        return
    body = options["json_data"]
    fixed = dict(options)
    fixed["json_data"] = {k: (v if k in _BODY_PLAIN else REDACTED) for k, v in body.items()}
    for k in ("extra_json", "content"):  # a body's extra fields, or the body as bytes
        if fixed.get(k):
            fixed[k] = REDACTED
    record.args = (fixed,)


def redact(record: logging.LogRecord) -> None:
    """Make ``record`` safe to write (in place); nothing with AGENTJOBS_LOG_PROMPTS."""
    if get_settings().log_prompts:
        return
    if record.name.startswith("celery"):
        _redact_celery(record)
    elif record.name.startswith("anthropic"):
        _redact_sdk(record)
    if not _secrets.get() and not _api_keys():
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format: the handler reports it, not us
        return
    clean = scrub(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        clean = scrub(text)
        if clean != text:  # the exception's message named a secret: keep the scrubbed text
            record.exc_text, record.exc_info = clean, None


# --- filter and formats ------------------------------------------------------------------


class ContextFilter(logging.Filter):
    """Copies the task's fields (``FIELDS``, ``TRACE_FIELDS``) onto each record and
    redacts it; never drops a record. For a handler: a logger's filter does not see the
    records of its child loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _fields.get()
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, fields.get(name))
        if record.task_id is None and record.name.startswith("celery"):  # type: ignore[attr-defined]
            record.task_id = _celery_task_id(record)
        if record.failure_kind is None and classify is not None:  # type: ignore[attr-defined]
            record.failure_kind = _kind(record)
        ids = trace_ids() if trace_ids is not None else None
        record.trace_id, record.span_id = ids if ids else (None, None)
        redact(record)
        return True


def _celery_task_id(record: logging.LogRecord) -> str | None:
    """The task id Celery's own line is about, when it is written outside the task's
    thread (the consumer's "Task ... received", before any field is bound): Celery
    passes it in the line's ``data``, or as the ``id`` of its format arguments."""
    for found in (getattr(record, "data", None), record.args):
        if isinstance(found, Mapping) and isinstance(found.get("id"), str):
            return str(found["id"])
    return None


def _kind(record: logging.LogRecord) -> str | None:
    """The failure kind of the exception a record is about: the one it carries, or, for
    agentjobs' own lines (the retry and dead-letter decisions, logged while the failure
    is handled), the one being handled; None when unknown (a library's handled error)."""
    exc = record.exc_info[1] if record.exc_info else None
    if exc is None and record.name.startswith("agentjobs."):
        exc = sys.exc_info()[1]
    if exc is None or classify is None or isinstance(exc, KeyboardInterrupt | SystemExit):
        return None
    try:
        kind = classify(exc)
    except Exception:
        return None
    return None if kind == "unknown" else kind


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    names = (*FIELDS, *TRACE_FIELDS, "task_name")
    return {n: v for n in names if (v := getattr(record, n, None)) not in (None, "", "???")}


class TextFormatter(logging.Formatter):
    """Another formatter's line (Celery's, a project's), with the task's fields appended
    to its first line as ``[task_id=... queue=...]``."""

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter(logging.BASIC_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        shown = {k: v for k, v in _fields_of(record).items() if k in FIELDS or k == "trace_id"}
        if shown:
            first, nl, rest = line.partition("\n")
            tail = " ".join(f"{k}={v}" for k, v in shown.items())
            line = f"{first} [{tail}]{nl}{rest}"
        return scrub(line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, ``process``, ``thread``, the task's fields present, ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "process": record.processName,
            "thread": record.threadName,
        }
        out.update(_fields_of(record))
        if record.exc_info:
            out["exception"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exception"] = scrub(record.exc_text)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # Scrubbed field by field: in the JSON text a secret would appear escaped.
        return json.dumps(out, default=str, ensure_ascii=False)


def install(*handlers: logging.Handler, fmt: str | None = None) -> None:
    """Put the ContextFilter and the format (``fmt``, default AGENTJOBS_LOG_FORMAT) on
    ``handlers`` (default: the root logger's). ``text`` keeps each handler's formatter
    and appends the fields; ``json`` replaces it. Safe to call again."""
    fmt = fmt or get_settings().log_format
    for handler in handlers or tuple(logging.getLogger().handlers):
        filter_only(handler)
        current = handler.formatter
        if fmt == "json":
            if not isinstance(current, JsonFormatter):
                handler.setFormatter(JsonFormatter())
        elif isinstance(current, JsonFormatter):
            handler.setFormatter(TextFormatter())
        elif not isinstance(current, TextFormatter):
            handler.setFormatter(TextFormatter(current))


def filter_only(handler: logging.Handler) -> None:
    """The ContextFilter on ``handler``, its format left as it is."""
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())

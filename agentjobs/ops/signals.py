"""Every Celery signal handler of agentjobs, in one place, feeding ``metrics.py``.

Nothing else in agentjobs connects to a signal: the pipeline, the limiter and the retry
code do their work, and this module turns what happens into counters and histograms.
It is imported by ``agentjobs.worker.app``, so handlers are connected in every process that
loads the app: callers (publishing) and workers (everything else).

Signal (where it fires): what is counted.

- ``before_task_publish`` (caller; worker on retry): ``tasks_published`` (first
  publish only); stamps send times into the message headers.
- ``task_received`` (worker main process): ``tasks_received``.
- ``task_prerun``, i.e. started (worker): ``tasks_started``, ``queue_wait_seconds``.
- ``task_retry``: ``retries`` and ``errors`` by failure class (``retry.classify``).
- ``task_success``: ``tasks{outcome=succeeded}``, cache hit or miss,
  ``limiter_wait_seconds``, ``end_to_end_seconds``.
- ``task_failure``: ``tasks{outcome=failed|dead_lettered}``, ``errors``,
  ``dead_lettered``, ``end_to_end_seconds``.
- ``task_rejected`` (a refused message, e.g. pickle), ``task_unknown``, ``task_revoked``
  (revoked or expired): ``tasks{outcome=rejected|revoked}``.
- ``worker_init``/``worker_ready``, ``worker_shutdown``: ``workers`` per queue (the
  registration is refreshed every 10 s, so a killed worker drops out).
- ``api_call_started``/``api_call_finished`` (ours, sent by ``client.create_message``
  around every Messages API call): ``api_requests`` by status, ``rate_limited``,
  ``tokens``, ``cost_usd``, ``call_seconds``, ``calls_in_flight``.

Tokens and cost are counted per API answer, not per task result: a result returned
again (idempotency record, response cache) cost nothing the second time, so the
counters equal what the API (or the simulator's log) saw.

Round trips: each handler adds its increments in one script call (``Batch.commit``).
A call made inside one of our tasks waits in its thread for the task's outcome
(success, retry or failure; ``task_postrun`` for any other end) and is added in that
outcome's script call, atomically with it: one round trip per task end instead of two.
So a call's figures appear together with its task's outcome, a few milliseconds after
the answer; a worker killed in between loses them, as one killed during the call does.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from datetime import datetime
from typing import Any

from celery import signals as cs
from celery._state import get_current_task
from celery.bootsteps import CLOSE, TERMINATE

from agentjobs import catalog
from agentjobs.api.events import api_call_finished, api_call_started
from agentjobs.errors import AgentJobsError, DeadLetteredError
from agentjobs.ops import metrics
from agentjobs.reliability import sweeper

log = logging.getLogger(__name__)


#: Message headers we add at publish (epoch seconds).
SENT_AT = "agentjobs_sent_at"
FIRST_SENT_AT = "agentjobs_first_sent_at"


def _ours(name: Any) -> bool:
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
    from celery.exceptions import Retry

    from agentjobs.reliability import retry

    if isinstance(exc, Retry | DeadLetteredError):
        inner = getattr(exc, "exc", None)
        cause = inner if isinstance(inner, BaseException) else exc.__cause__
        if cause is None:
            return "deferred" if isinstance(exc, Retry) else "unknown"
        exc = cause
    if exc is None:
        return "unknown"
    return retry.classify(exc).kind


def _request_labels(request: Any) -> tuple[str, str]:
    """(queue, model) of a task request (a Context or a worker Request)."""
    kwargs = getattr(request, "kwargs", None) or {}
    model = model_label(kwargs.get("model") if isinstance(kwargs, dict) else None)
    delivery = getattr(request, "delivery_info", None) or {}
    return queue_label(delivery.get("routing_key"), model), model


def _header(request: Any, name: str) -> float | None:
    value = getattr(request, name, None)
    if value is None and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(name)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _eta_ts(eta: Any) -> float | None:
    if not eta:
        return None
    if isinstance(eta, datetime):
        return eta.timestamp()
    try:
        return datetime.fromisoformat(str(eta)).timestamp()
    except ValueError:
        return None


# --- publishing ----------------------------------------------------------------------


@cs.before_task_publish.connect
def _on_publish(
    sender: Any = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    if not _ours(sender) or headers is None:
        return
    now = time.time()
    headers[SENT_AT] = now
    if headers.get(FIRST_SENT_AT) is None:
        headers[FIRST_SENT_AT] = _first_sent(headers) or now
    if int(headers.get("retries") or 0) > 0:
        return  # a retry of a task already counted
    kwargs = body[1] if isinstance(body, tuple | list) and len(body) > 1 else {}
    model = model_label(kwargs.get("model") if isinstance(kwargs, dict) else None)
    batch = metrics.Batch()
    batch.inc("tasks_published", (queue_label(routing_key, model), model))
    batch.commit()


def _first_sent(headers: dict[str, Any]) -> float | None:
    """On a retry (published from inside the task), the first publish time of that task."""
    from celery import current_task

    if not current_task:  # a proxy: false outside a task
        return None
    request = current_task.request
    if getattr(request, "id", None) != headers.get("id"):
        return None
    return _header(request, FIRST_SENT_AT)


# --- worker: task lifecycle -----------------------------------------------------------

#: Per thread: the increments of a call made in the running task, kept for its outcome.
_pending = threading.local()


def _defer(batch: metrics.Batch) -> bool:
    """Inside one of our tasks, keep ``batch`` for the task's outcome commit (True)."""
    task = get_current_task()
    if task is None or not _ours(getattr(task, "name", None)):
        return False
    earlier = getattr(_pending, "batch", None)
    if earlier is not None:  # a second call in the same task: the first one goes now
        earlier.commit()
    _pending.batch = batch
    return True


def _outcome_batch() -> metrics.Batch:
    """A batch for a task's outcome, holding its call's increments if one is pending."""
    batch: metrics.Batch | None = getattr(_pending, "batch", None)
    _pending.batch = None
    return batch if batch is not None else metrics.Batch()


@cs.task_received.connect
def _on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    if request is None or not _ours(getattr(request, "task_name", None)):
        return
    queue, _model = _request_labels(request)
    batch = metrics.Batch()
    batch.inc("tasks_received", (queue,))
    batch.commit()


@cs.task_prerun.connect
def _on_started(sender: Any = None, task: Any = None, **_: Any) -> None:
    if task is None or not _ours(task.name):
        return
    req = task.request
    queue, _model = _request_labels(req)
    batch = metrics.Batch()
    batch.inc("tasks_started", (queue,))
    sent = _header(req, SENT_AT)
    if sent is not None:
        ready = max(sent, _eta_ts(getattr(req, "eta", None)) or 0.0)
        batch.observe("queue_wait_seconds", (queue,), time.time() - ready)
    batch.commit()


def _end_to_end(batch: metrics.Batch, request: Any, queue: str) -> None:
    first = _header(request, FIRST_SENT_AT)
    if first is not None:
        batch.observe("end_to_end_seconds", (queue,), time.time() - first)


@cs.task_success.connect
def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    if sender is None or not _ours(sender.name):
        return
    req = sender.request
    queue, model = _request_labels(req)
    batch = _outcome_batch()
    batch.inc("tasks", (queue, model, "succeeded"))
    if isinstance(result, dict) and "usage" in result:
        if result.get("cached"):
            batch.inc("cache_hits", (queue, model))
        else:
            batch.inc("cache_misses", (queue, model))
            wait_ms = result.get("limiter_wait_ms")
            if isinstance(wait_ms, int | float):
                batch.observe("limiter_wait_seconds", (queue,), wait_ms / 1000.0)
    _end_to_end(batch, req, queue)
    batch.commit()


@cs.task_retry.connect
def _on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    if sender is None or not _ours(sender.name):
        return
    queue, model = _request_labels(request if request is not None else sender.request)
    kind = failure_class(reason)
    batch = _outcome_batch()
    batch.inc("retries", (queue, model, kind))
    if kind != "deferred":
        batch.inc("errors", (queue, model, kind))
    batch.commit()


@cs.task_failure.connect
def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    if sender is None or not _ours(sender.name):
        return
    req = sender.request
    queue, model = _request_labels(req)
    kind = failure_class(exception)
    dead = isinstance(exception, DeadLetteredError)
    batch = _outcome_batch()
    batch.inc("tasks", (queue, model, "dead_lettered" if dead else "failed"))
    batch.inc("errors", (queue, model, kind))
    if dead:
        batch.inc("dead_lettered", (queue, model, kind))
    _end_to_end(batch, req, queue)
    batch.commit()


@cs.task_postrun.connect
def _on_postrun(**_: Any) -> None:
    """Any end without an outcome signal (e.g. a Reject): a pending call goes now."""
    batch = getattr(_pending, "batch", None)
    if batch is not None:
        _pending.batch = None
        batch.commit()


@cs.task_revoked.connect
def _on_revoked(sender: Any = None, request: Any = None, **_: Any) -> None:
    name = getattr(sender, "name", None) or getattr(request, "task", None)
    if not _ours(name):
        return
    queue, model = _request_labels(request)
    batch = metrics.Batch()
    batch.inc("tasks", (queue, model, "revoked"))
    batch.commit()


@cs.task_rejected.connect
def _on_rejected(sender: Any = None, message: Any = None, **_: Any) -> None:
    headers = getattr(message, "headers", None) or {}
    if not _ours(headers.get("task")):
        return
    delivery = getattr(message, "delivery_info", None) or {}
    queue = queue_label(delivery.get("routing_key"), "unknown")
    batch = metrics.Batch()
    batch.inc("tasks", (queue, "unknown", "rejected"))
    batch.commit()


@cs.task_unknown.connect
def _on_unknown(sender: Any = None, message: Any = None, name: Any = None, **_: Any) -> None:
    """A message for a task this worker does not know: rejected, like a refused one."""
    if not _ours(name):
        return
    delivery = getattr(message, "delivery_info", None) or {}
    batch = metrics.Batch()
    batch.inc("tasks", (queue_label(delivery.get("routing_key"), "unknown"), "unknown", "rejected"))
    batch.commit()


# --- worker: liveness -------------------------------------------------------------------


class _Registration:
    """Keeps a worker registered for its queues until it stops (a daemon thread)."""

    def __init__(self, hostname: str, queues: list[str], worker: Any = None) -> None:
        self.hostname = hostname
        self.queues = queues
        self.worker = weakref.ref(worker) if worker is not None else None
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"agentjobs-metrics-{hostname}", daemon=True
        )

    def _stopped(self) -> bool:
        """An embedded worker can end without worker_shutdown: watch its state too."""
        if self.worker is None:
            return False
        worker = self.worker()
        blueprint = getattr(worker, "blueprint", None)
        return worker is None or (blueprint is not None and blueprint.state in (CLOSE, TERMINATE))

    def _run(self) -> None:
        while not self.stop.wait(metrics.WORKER_HEARTBEAT_S):
            if self._stopped():
                _unregister(self.hostname)
                return
            metrics.worker_seen(self.hostname, self.queues)


_registrations: dict[str, _Registration] = {}
_reg_lock = threading.Lock()


def _register(hostname: str, queues: list[str], worker: Any = None) -> None:
    metrics.worker_seen(hostname, queues)
    with _reg_lock:
        old = _registrations.get(hostname)
        if old is not None:
            if set(old.queues) == set(queues):
                return
            old.stop.set()
            metrics.worker_gone(hostname, [q for q in old.queues if q not in queues])
        reg = _registrations[hostname] = _Registration(hostname, queues, worker)
    reg.thread.start()


def _unregister(hostname: str) -> None:
    with _reg_lock:
        reg = _registrations.pop(hostname, None)
    if reg is not None:
        reg.stop.set()
        metrics.worker_gone(hostname, reg.queues)


def _consumed_queues(app: Any) -> list[str]:
    selected = app.amqp.queues.consume_from or app.amqp.queues
    return sorted(str(name) for name in selected)


@cs.worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    if hostname:
        _register(str(hostname), _consumed_queues(sender.app), sender)


@cs.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    task_consumer = getattr(sender, "task_consumer", None)
    if hostname and task_consumer is not None:
        queues = sorted(q.name for q in task_consumer.queues)
        _register(str(hostname), queues, getattr(sender, "controller", None))
    sweeper.start(getattr(sender, "controller", None))  # submit ledger (issue 5)


@cs.worker_shutdown.connect
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _unregister(str(getattr(sender, "hostname", "")))


# --- the Messages API calls (our own signals, sent by client.create_message) -----------


def _call_labels(params: dict[str, Any] | None) -> tuple[str, str]:
    model = model_label((params or {}).get("model"))
    return queue_label(None, model), model


@api_call_started.connect
def _on_call_started(sender: Any = None, call_id: str = "", params: Any = None, **_: Any) -> None:
    queue, model = _call_labels(params)
    metrics.call_started(call_id, queue, model)


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
    **_: Any,
) -> None:
    queue, model = _call_labels(params)
    batch = metrics.Batch()
    batch.finish_call(call_id, queue, model)
    batch.observe("call_seconds", (queue, model), latency_s)
    if message is not None:
        status = 200
    else:
        code = getattr(error, "status_code", None)
        status = code if isinstance(code, int) else 0
    batch.inc("api_requests", (queue, model, str(status)))
    if status == 429:
        batch.inc("rate_limited", (queue, model))
    if usage is not None:
        _count_usage(batch, queue, model, usage, cost_usd)
    if not _defer(batch):
        batch.commit()


def _count_usage(batch: metrics.Batch, queue: str, model: str, usage: Any, usd: float) -> None:
    for kind, n in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_creation", usage.cache_creation_input_tokens),
        ("cache_read", usage.cache_read_input_tokens),
    ):
        batch.inc("tokens", (queue, model, kind), n)
    if model != "unknown":
        batch.inc("cost_usd", (queue, model), usd)

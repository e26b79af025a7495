"""Every Celery signal handler of agentjobs, in this one package, feeding ``metrics.py``.

Nothing else in agentjobs connects to a signal: the pipeline, the limiter and the retry
code do their work, and these handlers turn what happens into counters and histograms.
The package is imported by ``agentjobs.worker.app``, so handlers are connected in every
process that loads the app: callers (publishing) and workers (everything else).

Signal (where it fires): what is counted; ``tasks.py`` unless said otherwise.

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
- ``worker_init``/``worker_ready``, ``worker_shutdown`` (``workers.py``): ``workers``
  per queue (the registration is refreshed every 10 s, so a killed worker drops out).
- ``api_call_started``/``api_call_finished`` (``calls.py``; ours, sent by
  ``client.create_message`` around every Messages API call): ``api_requests`` by
  status, ``rate_limited``, ``tokens``, ``cost_usd``, ``call_seconds``,
  ``calls_in_flight``.

Traces and log context (``telemetry.py``): a producer span from ``before_task_publish``
to ``after_task_publish`` (its context into the headers), a task span from
``task_prerun`` to ``task_postrun`` (under the context the message carried) with
agentjobs' fields set at ``task_success``/``task_retry``/``task_failure``; the task's
log fields bound at ``task_prerun``, its failure kind at retry or failure, unbound at
``task_postrun``; ``after_setup_logger``/``after_setup_task_logger``: the log filter
and format on the handlers Celery made.

Tokens and cost are counted per API answer, not per task result: a result returned
again (idempotency record, response cache) cost nothing the second time, so the
counters equal what the API (or the simulator's log) saw.

Round trips: each handler writes in one script call (``metrics.Update.commit``), and a
task's own figures ride along with calls that happen anyway (``pending.py``): its start
with its Messages API call's in-flight mark, the call's figures with the task's
outcome. A task that calls Claude once takes three: received, started with the call in
flight, the outcome with the call's figures.
"""

from __future__ import annotations

from agentjobs.ops.signals import calls, tasks, telemetry, workers
from agentjobs.ops.signals.labels import (
    FIRST_SENT_AT,
    SENT_AT,
    failure_class,
    model_label,
    queue_label,
)

__all__ = [
    "FIRST_SENT_AT",
    "SENT_AT",
    "calls",
    "failure_class",
    "model_label",
    "queue_label",
    "tasks",
    "telemetry",
    "workers",
]

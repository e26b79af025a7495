"""The baselines of bench/overhead.py: a bare Celery app with two tasks.

- ``bench.noop`` returns at once: Celery's own cost per task;
- ``bench.sdk_call`` makes the one SDK call (``messages.create``, no retries) that any
  Celery task calling Claude makes, and nothing else: the floor under ``complete``.

Same broker and result backend as agentjobs (from AGENTJOBS_BROKER_URL and
AGENTJOBS_RESULT_BACKEND), same serializer, late acks and prefetch, and nothing else:
no validation, no pipeline, no signal handlers. It never imports agentjobs.
Run as ``celery -A noop_app worker -Q bench.noop,bench.sdk -P threads -c N`` with bench/
on the path.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import anthropic
from celery import Celery

app = Celery("bench", broker=os.environ["AGENTJOBS_BROKER_URL"])
app.conf.update(
    result_backend=os.environ["AGENTJOBS_RESULT_BACKEND"],
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue="bench.noop",
    task_routes={"bench.sdk_call": {"queue": "bench.sdk"}},
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(**kwargs: object) -> dict[str, object]:
    """Return at once: all that remains is Celery's own cost per task."""
    return {"ok": True}


_local = threading.local()


def _client() -> anthropic.Anthropic:
    # one client per thread: the worker's threads never share a connection pool lock
    if not hasattr(_local, "client"):
        _local.client = anthropic.Anthropic(api_key="sk-ant-bench", max_retries=0)
    client: anthropic.Anthropic = _local.client
    return client


@app.task(name="bench.sdk_call")
def sdk_call(prompt: str, max_tokens: int = 16, **_: Any) -> dict[str, object]:
    """One Messages API call through the SDK (ANTHROPIC_BASE_URL: the simulator)."""
    message = _client().messages.create(
        model="claude-haiku-4-5",
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": prompt}],
    )
    return {"id": message.id, "output_tokens": message.usage.output_tokens}

"""The baseline of bench/overhead.py: a bare Celery app with one no-op task.

Same broker and result backend as agentjobs (from AGENTJOBS_BROKER_URL and
AGENTJOBS_RESULT_BACKEND), same serializer, late acks and prefetch, and nothing else:
no validation, no pipeline, no HTTP call, no signal handlers. It never imports agentjobs.
Run as ``celery -A noop_app worker -Q bench.noop -P threads -c N`` with bench/ on the path.
"""

from __future__ import annotations

import os

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
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(**kwargs: object) -> dict[str, object]:
    """Return at once: all that remains is Celery's own cost per task."""
    return {"ok": True}

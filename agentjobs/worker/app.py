"""The Celery app: ``celery -A agentjobs worker ...`` finds it as ``agentjobs.worker.app``."""

from __future__ import annotations

from typing import Any

from celery import Celery, concurrency

# `-P threads` means agentjobs' resizable threads pool (pool.py): Celery's own dies at
# the first --autoscale step. Set here, before any worker in this process parses -P.
concurrency.ALIASES["threads"] = "agentjobs.worker.pool:ThreadPool"

app = Celery("agentjobs", include=["agentjobs.worker.tasks"])
app.config_from_object("celeryconfig")
# Every worker checks its credentials and API URL before it takes a task (worker.py).
app.steps["worker"].add("agentjobs.worker.preflight:Preflight")

# Connects every signal handler (metrics) in each process that loads the app: callers
# count what they publish, workers what they run.
import agentjobs.ops.signals  # noqa: E402,F401


def celery_settings(namespace: str = "") -> dict[str, Any]:
    """agentjobs' Celery settings (``celeryconfig``) as a dict, keys upper-cased under
    ``NAMESPACE_`` when a namespace is given.

    For projects that configure this app from their own settings, e.g. Django's
    ``app.config_from_object("django.conf:settings", namespace="CELERY")``: put
    ``globals().update(celery_settings("CELERY"))`` in settings.py first, so JSON-only,
    late acks, routing and result expiry stay as agentjobs needs them, then override.
    """
    from celery.app.defaults import DEFAULTS  # every known Celery setting name

    import celeryconfig

    values = {name: value for name, value in vars(celeryconfig).items() if name in DEFAULTS}
    if not namespace:
        return values
    return {f"{namespace}_{name.upper()}": value for name, value in values.items()}

"""The Celery app: ``celery -A agentjobs worker ...`` finds it as ``agentjobs.app``."""

from __future__ import annotations

from celery import Celery

app = Celery("agentjobs", include=["agentjobs.tasks"])
app.config_from_object("celeryconfig")

# Connects every signal handler (metrics) in each process that loads the app: callers
# count what they publish, workers what they run.
import agentjobs.signals  # noqa: E402,F401

"""The Celery app: ``celery -A agentjobs worker ...`` finds it as ``agentjobs.app``."""

from __future__ import annotations

from celery import Celery

app = Celery("agentjobs", include=["agentjobs.tasks"])
app.config_from_object("celeryconfig")

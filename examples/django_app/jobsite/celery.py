"""The project's Celery app, per Celery's Django integration.

agentjobs' tasks belong to ``agentjobs.worker.app``, so the project uses that app rather than a
new one, and configures it the Django way: every ``CELERY_*`` name in settings.py.
``celery -A jobsite worker -Q claude.haiku -P threads`` works, as does
``agentjobs worker haiku`` (same broker: both read AGENTJOBS_BROKER_URL by default).
"""

import os

from agentjobs import app

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")

app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # the project's own tasks.py modules, if any

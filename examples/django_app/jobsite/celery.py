"""The project's own Celery app, the layout of Celery's Django guide, with agentjobs
installed on it.

Configured the Django way (every ``CELERY_*`` name in settings.py); ``agentjobs.install``
adds agentjobs' tasks, routes and required settings (JSON only, late acks: a conflicting
``CELERY_*`` setting is refused in one line). ``celery -A jobsite worker -Q claude.haiku
-P threads`` serves Claude calls; ``celery -A jobsite agentjobs dlq list`` lists dead
letters.
"""

import os

from celery import Celery

import agentjobs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")

app = Celery("jobsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
agentjobs.install(app)
app.autodiscover_tasks()  # the project's own tasks.py modules, if any

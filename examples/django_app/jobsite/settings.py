"""Settings of the agentjobs Django example (a JSON API, no database)."""

import os

from agentjobs.worker.app import celery_settings

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "agentjobs-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
INSTALLED_APPS = ["jobs"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "jobsite.urls"
DATABASES: dict = {}
USE_TZ = True

# Celery, read by jobsite/celery.py under the CELERY_ namespace. Start from agentjobs'
# settings (JSON only, late acks, routing by model, result expiry; AGENTJOBS_* from the
# environment), then override what this project needs, e.g.:
#   CELERY_RESULT_EXPIRES = 3600
globals().update(celery_settings(namespace="CELERY"))

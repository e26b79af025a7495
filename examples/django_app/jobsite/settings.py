"""Settings of the agentjobs Django example (a JSON API, no database)."""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "agentjobs-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
INSTALLED_APPS = ["jobs"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "jobsite.urls"
DATABASES: dict = {}
USE_TZ = True

# Celery, read by jobsite/celery.py under the CELERY_ namespace: the project's broker and
# result backend. agentjobs.install (jobsite/celery.py) adds what agentjobs needs.
CELERY_BROKER_URL = os.environ.get("BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = os.environ.get("RESULT_BACKEND", "redis://127.0.0.1:6379/0")
CELERY_RESULT_EXPIRES = 86400

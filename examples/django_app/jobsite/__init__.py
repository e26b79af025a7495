# Celery's Django convention: load the Celery app when Django starts, so that
# `complete.delay()` in a view uses the project's settings.
from jobsite.celery import app as celery_app

__all__ = ("celery_app",)

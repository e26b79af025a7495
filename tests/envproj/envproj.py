"""A project's Celery app whose broker and result backend come from Celery's own
environment variables (CELERY_BROKER_URL, CELERY_RESULT_BACKEND), as a Django or Flask
project's often do, with agentjobs installed on it (tests/test_install_env.py)."""

import os

from celery import Celery

import agentjobs

app = Celery("envproj")
app.conf.update(task_default_queue="envproj.default")  # no broker_url: Celery reads the env
if os.environ.get("ENVPROJ_RESULT_BACKEND"):  # a backend of the project's configuration
    app.conf.result_backend = os.environ["ENVPROJ_RESULT_BACKEND"]
agentjobs.install(app)


@app.task(name="envproj.add")
def add(x: int, y: int) -> int:
    """One of the project's own tasks, on its own queue."""
    return x + y

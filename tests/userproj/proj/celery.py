"""The project's own Celery app, with agentjobs installed on it.

The broker and result backend are the project's (PROJ_BROKER_URL, PROJ_RESULT_BACKEND),
not agentjobs' own AGENTJOBS_BROKER_URL: ``complete.delay`` must publish here. With
PROJ_PICKLE=1 the project asks for pickle, which agentjobs refuses; with PROJ_PICKLE=late it
asks after its configuration was read (loaded), which agentjobs refuses too.
"""

import os

from celery import Celery

import agentjobs

app = Celery("proj")
app.conf.update(
    broker_url=os.environ["PROJ_BROKER_URL"],
    result_backend=os.environ["PROJ_RESULT_BACKEND"],
    task_default_queue="proj.default",
)
if os.environ.get("PROJ_PICKLE") == "1":
    app.conf.update(task_serializer="pickle", accept_content=["json", "pickle"])
agentjobs.install(app)
if os.environ.get("PROJ_PICKLE") == "late" and app.conf.broker_url:  # read: loaded now
    app.conf.task_serializer = "pickle"


@app.task(name="proj.add")
def add(x: int, y: int) -> int:
    """One of the project's own tasks, on its own queue."""
    return x + y

"""The apps agentjobs' tasks are defined on besides its own: a project's Celery app,
once ``agentjobs.install(app)`` has run on it.

Each task of agentjobs is defined once, on agentjobs' own app (``@app.task`` in
``tasks.py`` and the agent modules); the definition (function and options) is kept
here and made again on every host app, now and for tasks defined later, as Celery's
``shared_task`` does for every app of a process. So ``complete`` on a project's app is
the same task, bound to that app: its ``delay`` publishes through the project's broker
and its worker runs it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery

#: agentjobs' tasks, by Celery name: the function and the options it was defined with.
DEFINITIONS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
#: The apps agentjobs is installed on, in order; the last one is the one
#: ``complete.delay`` publishes through.
HOSTS: list[Celery] = []
_lock = threading.RLock()


def ours(name: str) -> bool:
    """Whether a Celery task name is one of agentjobs' tasks."""
    return name.startswith("agentjobs.")


def define(fun: Callable[..., Any], options: dict[str, Any]) -> None:
    """Keep one of agentjobs' task definitions (``options`` holds its ``name``), and
    define it on every host app."""
    with _lock:
        DEFINITIONS[options["name"]] = (fun, options)
        hosts = list(HOSTS)
    for host in hosts:
        _define_on(host, fun, options)


def add(app: Celery) -> None:
    """Make ``app`` a host: every task defined so far, and each one defined later, is
    defined on it too."""
    with _lock:
        if app in HOSTS:
            return
        HOSTS.append(app)
        definitions = list(DEFINITIONS.values())
    for fun, options in definitions:
        _define_on(app, fun, options)


def remove(app: Celery) -> None:
    """``app`` is no longer where ``complete.delay`` publishes (its tasks stay)."""
    with _lock:
        if app in HOSTS:
            HOSTS.remove(app)


def _define_on(app: Celery, fun: Callable[..., Any], options: dict[str, Any]) -> None:
    # app.task is lazy until the app is finalized (a pending promise, evaluated then),
    # and defines the task at once after; a name it already has is left alone.
    if app.finalized and options["name"] in app.tasks:
        return
    app.task(**options)(fun)

"""The worker's preflight bootstep: no worker starts that could not make a single call."""

from __future__ import annotations

from typing import Any

import click
from celery import bootsteps, signals

from agentjobs.api import client
from agentjobs.errors import ConfigurationError
from agentjobs.ops import served


class Preflight(bootsteps.Step):
    """Refuses to build the worker when no call could succeed (``client.preflight``).

    It runs while the worker is built, before it connects or reports ready. The error is
    a ClickException so that both ``celery worker`` and ``agentjobs worker`` print it as
    one line and exit with status 1, instead of a traceback.
    """

    name = "agentjobs.preflight"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        if not _calls_claude(parent):
            # A worker of a project's app (agentjobs.install) for its own queues only,
            # or of agent sessions' tool calls (agentjobs.tools, a tool's own queue),
            # makes no Claude call: it needs no credentials.
            super().__init__(parent, **kwargs)
            return
        try:
            client.preflight()
        except ConfigurationError as exc:
            # worker_init has registered the worker as live (metrics): a refused worker,
            # restarted again and again by its supervisor, must not look alive.
            signals.worker_shutdown.send(sender=parent)
            raise click.ClickException(f"worker not started: {exc}") from None
        super().__init__(parent, **kwargs)


def _calls_claude(worker: Any) -> bool:
    """Whether the worker consumes a queue of Claude calls (``claude.*``), or every
    queue (none named): ``ops/served.py`` decides, for the signal handlers too."""
    return served.calls_claude(worker)

"""agentjobs' Celery settings, for deployments and tools that load them by this name.

``agentjobs.app`` does not read this file: it loads ``agentjobs.worker.config`` (inside
the package) by its full name, so a project's own ``celeryconfig.py`` never becomes
agentjobs' configuration. This module re-exports those values, e.g. for a Celery app of
your own (``app.config_from_object("celeryconfig")``) or to read what agentjobs runs
with. To change a setting, use the ``AGENTJOBS_*`` variables (README, settings), or
update ``agentjobs.app.conf``; the required ones (JSON only, late acks, routing by
model: ``agentjobs.worker.config.REQUIRED``) cannot be changed.
"""

from agentjobs.worker.config import *  # noqa: F403

"""agentjobs' Celery settings, for deployments and tools that load them by this name.

``agentjobs.app`` does not read this file: it loads ``agentjobs.worker.config`` (inside
the package) by its full name, so a project's own ``celeryconfig.py`` never becomes
agentjobs' configuration. This module re-exports those values, to read what agentjobs
runs with from a checkout or the image (its working directory). It is not in the wheel:
a top-level ``celeryconfig`` in site-packages would be found by any project that loads
its own by that name from a directory where it is missing. A Celery app of your own
takes agentjobs' settings with ``agentjobs.install(app)``. To change a setting, use the
``AGENTJOBS_*`` variables (README, settings), or update ``agentjobs.app.conf``; the
required ones (JSON only, late acks, routing by model:
``agentjobs.worker.config.REQUIRED``) cannot be changed.
"""

from agentjobs.worker.config import *  # noqa: F403

"""The app's configuration (``INSTALLED_APPS``: ``"agentjobs.console.django"``)."""

from __future__ import annotations

from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "agentjobs.console.django"
    label = "agentjobs_console"
    verbose_name = "agentjobs console"

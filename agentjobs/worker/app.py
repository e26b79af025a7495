"""The Celery app: ``celery -A agentjobs worker ...`` finds it as ``agentjobs.worker.app``."""

from __future__ import annotations

from typing import Any

import click
from celery import Celery, concurrency

from agentjobs.errors import ConfigurationError
from agentjobs.settings import check_celery_environment, get_settings
from agentjobs.worker import hosts

# `-P threads` means agentjobs' resizable threads pool (pool.py): Celery's own dies at
# the first --autoscale step. Set here, before any worker in this process parses -P.
concurrency.ALIASES["threads"] = "agentjobs.worker.pool:ThreadPool"


class SettingsRefused(ConfigurationError, click.ClickException):
    """Celery settings agentjobs cannot run with (pickle, no late acks, ...): a
    ConfigurationError (catch that) that a command line (``celery worker`` as much as
    ``agentjobs``) prints as one line with exit status 1, instead of a traceback."""


class AgentJobsCelery(Celery):
    """Celery, with agentjobs' required settings (``agentjobs.worker.config.REQUIRED``)
    enforced on whatever configuration is loaded: a project that points this app at its
    own settings (Django's ``config_from_object``) keeps JSON only, late acks and routing
    by model, and one that sets them otherwise is refused in one line."""

    def _load_config(self) -> Any:
        # Celery's one step that every configuration load goes through (lazily, at first
        # use, and again after config_from_object(force=True)); its on_after_configure
        # signal would log an exception instead of raising it.
        try:
            # Importing agentjobs.worker.config reads the settings (get_settings).
            from agentjobs.worker.config import enforce

            if not hosts.HOSTS:
                # agentjobs' own app reads AGENTJOBS_*: a CELERY_* variable Celery would
                # prefer is refused. Once installed on a project's app (whose broker may
                # come from CELERY_BROKER_URL), this app publishes and serves nothing.
                check_celery_environment(get_settings())
            conf = super()._load_config()
            enforce(conf)
        except ConfigurationError as exc:
            self._conf = None  # the next access loads (and refuses) again
            raise SettingsRefused(str(exc)) from None
        return conf

    def _task_from_fun(self, fun: Any, name: Any = None, **options: Any) -> Any:
        # Every task definition goes through here (app.task, lazily at finalize): keep
        # agentjobs' own, so that agentjobs.install defines them on a project's app too.
        task = super()._task_from_fun(fun, name=name, **options)
        if self is app and hosts.ours(task.name):
            hosts.define(fun, {**options, "name": task.name})
        return task


# The agent loop's tasks by module name: worker sits below agents and imports none of it.
app = AgentJobsCelery("agentjobs", include=["agentjobs.worker.tasks", "agentjobs.agents.tasks"])
# By its full name: a bare "celeryconfig" would be the first one on sys.path, often the
# project's own.
app.config_from_object("agentjobs.worker.config")
# Every worker checks its credentials and API URL before it takes a task (worker.py).
app.steps["worker"].add("agentjobs.worker.preflight:Preflight")


@app.on_after_finalize.connect
def _register_tasks(sender: Celery, **_: Any) -> None:
    # The app owns its tasks: any process that holds it (a producer, `celery inspect`, a
    # test) finds agentjobs.complete in app.tasks, as a worker does through `include`.
    sender.loader.import_default_modules()


def publishing_app() -> Celery:
    """The app agentjobs' tasks publish through: the last one ``agentjobs.install`` ran
    on, else agentjobs' own."""
    return hosts.HOSTS[-1] if hosts.HOSTS else app


# Connects every signal handler (metrics) in each process that loads the app: callers
# count what they publish, workers what they run.
import agentjobs.ops.signals  # noqa: E402,F401


def celery_settings(namespace: str = "") -> dict[str, Any]:
    """agentjobs' Celery settings (``agentjobs.worker.config``) as a dict, keys
    upper-cased under ``NAMESPACE_`` when a namespace is given.

    For projects that configure this app from their own settings, e.g. Django's
    ``app.config_from_object("django.conf:settings", namespace="CELERY")``: put
    ``globals().update(celery_settings("CELERY"))`` in settings.py first, then override
    what the project needs. The required settings (JSON only, late acks, routing) are
    enforced whatever the project sets: a conflicting value is refused.
    """
    from celery.app.defaults import DEFAULTS  # every known Celery setting name

    from agentjobs.worker import config as celeryconfig

    values = {name: value for name, value in vars(celeryconfig).items() if name in DEFAULTS}
    if not namespace:
        return values
    return {f"{namespace}_{name.upper()}": value for name, value in values.items()}

"""``celery -A proj agentjobs ...``: the agentjobs sub-commands as a Celery CLI extension.

Celery loads every ``celery.commands`` entry point as a sub-command of ``celery``
(pyproject.toml names this group there). Its sub-commands are the ``agentjobs`` ones
(the same table, loaded lazily), run against the app ``-A`` names: ``dlq replay``
publishes through that app's broker, ``stats`` reads its queues, ``worker haiku`` runs
a worker of it. Without ``-A`` they use agentjobs' own app, as ``agentjobs ...`` does.
Loading this module imports neither Celery's app nor the Anthropic SDK, so ``celery
--help`` stays as fast as before.
"""

from __future__ import annotations

from typing import Any

import click

from agentjobs.cli import COMMANDS, LazyGroup
from agentjobs.cli.context import CliContext


def _app_of_celery(ctx: click.Context) -> Any:
    """The app ``celery -A`` loaded, or None when no ``-A`` (nor ``APP``) was given:
    Celery would then hand over its empty fallback app, which knows no broker of ours."""
    root = ctx.find_root()
    if root.params.get("app") is None:
        return None
    return getattr(root.obj, "app", None)


class CeleryLazyGroup(LazyGroup):
    """The ``agentjobs`` group under ``celery``: swaps Celery's context object for ours,
    holding the app Celery loaded."""

    def invoke(self, ctx: click.Context) -> Any:
        if not isinstance(ctx.obj, CliContext):
            ctx.obj = CliContext(app=_app_of_celery(ctx))
        return super().invoke(ctx)


@click.group(
    "agentjobs",
    cls=CeleryLazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
def agentjobs() -> None:
    """agentjobs' commands against this Celery app (-A): dead letters, stats, workers, ...

    \b
    Examples:
      celery -A proj agentjobs dlq list
      celery -A proj agentjobs stats
      celery -A proj agentjobs worker haiku -c 32
    """

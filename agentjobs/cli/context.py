"""What every ``agentjobs`` command shares: the context object, ``--json``, JSON output,
and the one-line error.

Nothing heavy is imported here: the root group loads this module for ``agentjobs
--help`` too. The Celery app, Redis and kombu are imported only when a command needs
them or an error has to be named.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from celery import Celery

F = TypeVar("F", bound=Callable[..., Any])


class CliContext:
    """One per invocation (``ctx.obj``), created by the root group; a command asks for it
    with ``@pass_cli``.

    ``app`` is the Celery app, imported on first use: ``agentjobs sim``, ``limiter`` or
    ``cost`` never load it. A caller that has its own app (an embedding CLI) passes it in.
    """

    def __init__(self, app: Celery | None = None) -> None:
        self._app = app
        self._checked = False
        #: How the command uses the state store, as the verb of its error line:
        #: "cannot {doing} the state store URL (AGENTJOBS_REDIS_URL): ...".
        self.doing = "reach"

    @property
    def app(self) -> Celery:
        if not self._checked:
            if self._app is not None:
                app = self._app
            else:
                from agentjobs.worker.app import app
            # Loading its configuration refuses, in one line, before any command uses the
            # app: a CELERY_* variable that disagrees with AGENTJOBS_* (app.py), or a
            # setting of a project's app (`celery -A proj agentjobs`) that agentjobs
            # cannot run with (install.py), which a command would otherwise meet midway
            # (`stats`: "queue depth unavailable: ...").
            app.conf.get("broker_url")
            self._app = app
            self._checked = True
        return self._app

    @property
    def loaded_app(self) -> Celery | None:
        """The app if a command loaded it, else None (an error line must not load it)."""
        return self._app


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def json_option(help: str = "JSON output for scripts.") -> Callable[[F], F]:
    """``--json``, the same flag on every command; it arrives as ``as_json``."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def echo_json(data: Any, *, one_line: bool = False, err: bool = False) -> None:
    """Print ``data`` as JSON: indented with sorted keys, or ``one_line`` where a command
    prints a stream of objects (``stats --watch``) or a summary beside other output."""
    if one_line:
        text = json.dumps(data, sort_keys=True, default=str)
    else:
        text = json.dumps(data, indent=2, sort_keys=True, default=str)
    click.echo(text, err=err)


def fail(message: str) -> click.ClickException:
    """``message`` as the one line (``Error: ...``, exit status 1) click prints."""
    lines = (line.strip() for line in message.splitlines())
    return click.ClickException("; ".join(line for line in lines if line))


def unreachable(
    service: str, url: str, variable: str, exc: BaseException, doing: str = "reach"
) -> click.ClickException:
    """``cannot reach the broker redis://...:6379/0 (AGENTJOBS_BROKER_URL): <why>``, with
    any password in the URL masked."""
    from kombu.utils.url import maybe_sanitize_url

    return fail(f"cannot {doing} the {service} {maybe_sanitize_url(url)} ({variable}): {exc}")


#: The extra (pyproject.toml's optional-dependencies) that installs each optional library.
EXTRAS = {
    "aiohttp": "sim",
    "flower": "ops",
    "prometheus_client": "ops",
    "psycopg": "postgres",
    "opentelemetry": "otel",
}


def missing_extra(exc: BaseException) -> click.ClickException | None:
    """``needs aiohttp: pip install 'agentjobs[sim]'`` for a library an extra brings."""
    if not isinstance(exc, ModuleNotFoundError):
        return None
    top = (exc.name or "").partition(".")[0]
    extra = EXTRAS.get(top)
    if extra is None:
        return None
    return fail(f"this needs {top}, which is not installed: pip install 'agentjobs[{extra}]'")


def error_line(exc: BaseException, cli: CliContext | None) -> click.ClickException | None:
    """The one line for an error every command may meet, or None to let it propagate:
    a bad setting or refused request (any AgentJobsError), an optional library missing
    (the extra to install), the state store (a Redis error) or the broker (kombu's
    OperationalError, py-amqp's refused connection) unreachable."""
    from agentjobs.errors import AgentJobsError

    if isinstance(exc, AgentJobsError):
        return fail(str(exc))
    extra = missing_extra(exc)
    if extra is not None:
        return extra
    # A library that was never imported raised nothing; looking it up instead of
    # importing it keeps `agentjobs sim --help` (click's exit goes through here) light.
    redis = sys.modules.get("redis")
    if redis is not None and isinstance(exc, redis.RedisError):
        from agentjobs.settings import get_settings

        doing = cli.doing if cli is not None else "reach"
        url = get_settings().redis_url
        return unreachable("state store", url, "AGENTJOBS_REDIS_URL", exc, doing)
    kombu = sys.modules.get("kombu.exceptions")
    # RabbitMQ refusing the connection (a wrong password: ACCESS_REFUSED, which py-amqp
    # counts a channel error; a vhost that does not exist) is py-amqp's own error, which
    # kombu passes on unwrapped: irrecoverable to kombu, to the user the same "cannot
    # reach the broker".
    amqp = sys.modules.get("amqp.exceptions")
    if (kombu is not None and isinstance(exc, kombu.OperationalError)) or (
        amqp is not None and isinstance(exc, (amqp.ConnectionError, amqp.AccessRefused))
    ):
        from agentjobs.worker import hosts

        app = cli.loaded_app if cli is not None else None
        variable = "AGENTJOBS_BROKER_URL"
        if app is not None:
            url = app.conf.broker_url
            if app in hosts.HOSTS:  # `celery -A proj agentjobs ...`: the project's broker
                variable = f"the broker_url of Celery app {app.main!r}"
        else:
            from agentjobs.settings import get_settings

            url = get_settings().broker_url
        return unreachable("broker", url, variable, exc)
    return None

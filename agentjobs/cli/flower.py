"""``agentjobs flower``: Flower for the agentjobs app, with authentication on by default.

Equal to ``celery -A agentjobs flower --address A --port P --basic-auth U:P``. Basic auth
comes from ``AGENTJOBS_FLOWER_BASIC_AUTH`` (``user:password``, comma-separated for
several users), or Flower's own authentication is configured the way Flower reads it:
``--basic-auth=...`` / ``FLOWER_BASIC_AUTH``, or OAuth with ``--auth=EMAILS`` /
``FLOWER_AUTH`` (plus ``--auth_provider`` and the ``--oauth2_*`` options). Without any,
Flower may only listen on a loopback address (local development); on any other address
the command refuses to start unless ``--no-auth`` says an authenticating proxy sits in
front. Flower's ``/metrics`` stays open for Prometheus (it has no task data); its UI and
API require the password.
"""

from __future__ import annotations

import ipaddress
import os

import click

from agentjobs.cli.context import CliContext, pass_cli
from agentjobs.settings import get_settings


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


#: Flower options that turn its own authentication on (its views check exactly these):
#: basic auth, and ``auth`` (the allowed e-mails of OAuth; the ``oauth2_*`` options and
#: ``auth_provider`` do nothing without it).
_FLOWER_AUTH_OPTIONS = ("basic_auth", "auth")


def flower_auth(extra: tuple[str, ...] = ()) -> list[str]:
    """The Flower auth options set in ``extra`` (``--name=value``, the only form Flower
    parses) or in Flower's ``FLOWER_*`` environment variables; empty values do not count."""
    found = []
    for arg in extra:
        name, _, value = arg.lstrip("-").partition("=")
        name = name.replace("-", "_")
        if name in _FLOWER_AUTH_OPTIONS and value.strip(", "):
            found.append(f"--{name}")
    for name in _FLOWER_AUTH_OPTIONS:
        if os.environ.get(f"FLOWER_{name.upper()}", "").strip(", "):
            found.append(f"FLOWER_{name.upper()}")
    return found


def flower_argv(address: str, port: int, no_auth: bool, extra: tuple[str, ...] = ()) -> list[str]:
    """The ``celery flower`` argv; raises ClickException when auth is required but unset."""
    auth = get_settings().flower_basic_auth
    if auth is not None:
        users = [u for u in auth.split(",") if u]
        if not users or any(":" not in u or u.startswith(":") for u in users):
            raise click.ClickException(
                "AGENTJOBS_FLOWER_BASIC_AUTH must be user:password (comma-separate several)"
            )
    if not auth and not no_auth and not is_loopback(address) and not flower_auth(extra):
        raise click.ClickException(
            f"Flower on {address} needs authentication: set "
            "AGENTJOBS_FLOWER_BASIC_AUTH=user:password (or Flower's own --basic-auth=, "
            "FLOWER_BASIC_AUTH, or OAuth with --auth=EMAILS), listen on 127.0.0.1 for "
            "local development, or pass --no-auth behind an authenticating proxy"
        )
    argv = ["flower", f"--address={address}", f"--port={port}"]
    if auth:
        argv.append(f"--basic-auth={auth}")
    return [*argv, *extra]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="""\b
Examples:
  agentjobs flower                                   # http://127.0.0.1:5555, local dev
  AGENTJOBS_FLOWER_BASIC_AUTH=ops:s3cret agentjobs flower --address 0.0.0.0
  FLOWER_BASIC_AUTH=ops:s3cret agentjobs flower --address 0.0.0.0   # Flower's own
  agentjobs flower --address 0.0.0.0 --auth='.*@example.com' --auth_provider=... \\
      --oauth2_key=... --oauth2_secret=... --oauth2_redirect_uri=...  # OAuth
  agentjobs flower --url-prefix flower               # any flower flag passes through
\b
Dead letters are failed tasks: Tasks > state FAILURE (or /api/tasks?state=FAILURE);
their exception is DeadLetteredError naming the record (`agentjobs dlq show ID`).
""",
)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", default=5555, show_default=True, type=int)
@click.option("--no-auth", is_flag=True, help="Run without auth on a non-loopback address.")
@click.pass_context
@pass_cli
def flower(cli: CliContext, ctx: click.Context, address: str, port: int, no_auth: bool) -> None:
    """Run Flower for agentjobs (password required outside local development)."""
    import importlib.util

    if importlib.util.find_spec("flower") is None:  # else Celery: "No such command"
        raise ModuleNotFoundError("No module named 'flower'", name="flower")
    argv = flower_argv(address, port, no_auth, tuple(ctx.args))
    cli.app.start(argv=argv)

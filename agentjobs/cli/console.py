"""``agentjobs console``: the ops console in the browser (dead letters, sessions, batches,
cost, the limiter), authentication required off loopback."""

from __future__ import annotations

import click

from agentjobs.cli.context import CliContext, fail, pass_cli
from agentjobs.errors import ConfigurationError
from agentjobs.settings import get_settings


@click.command(
    "console",
    epilog="""\b
Examples:
  agentjobs console                                  # http://127.0.0.1:5600, local use
  AGENTJOBS_CONSOLE_BASIC_AUTH=ops:s3cret agentjobs console --address 0.0.0.0
  agentjobs console --address 0.0.0.0 --no-auth      # behind an authenticating proxy
\b
Every action (replay, purge, approve, deny, pause, resume) is a POST with a CSRF
token; pages only read. In Django: add "agentjobs.console.django" to INSTALLED_APPS
and path("ops/", include("agentjobs.console.django.urls")) (staff login required).
""",
)
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", default=5600, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--basic-auth",
    metavar="USER:PASSWORD",
    help="Users allowed in (comma-separate several); default AGENTJOBS_CONSOLE_BASIC_AUTH.",
)
@click.option("--no-auth", is_flag=True, help="Run without auth on a non-loopback address.")
@pass_cli
def console(
    cli: CliContext, address: str, port: int, basic_auth: str | None, no_auth: bool
) -> None:
    """The ops console in the browser: dead letters, sessions, batches, cost, limiter."""
    from agentjobs.console.app import Console
    from agentjobs.console.server import check_address, make, parse_users

    try:
        users = parse_users(basic_auth or get_settings().console_basic_auth)
        check_address(address, users, no_auth)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
    server = make(address, port, Console(app=cli.app), users)
    auth = f"basic auth, {len(users)} user(s)" if users else "no auth"
    click.echo(f"agentjobs console on http://{address}:{server.server_port}/ ({auth})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

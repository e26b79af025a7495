"""``agentjobs stats``: the figures of ``ops/stats.py`` as a table or JSON, once or live."""

from __future__ import annotations

import time

import click

from agentjobs.cli.context import CliContext, echo_json, json_option, pass_cli
from agentjobs.ops.stats import collect, render


@click.command(
    epilog="""\b
Examples:
  agentjobs stats                      # last 15 minutes and all time
  agentjobs stats --minutes 60 --queue claude.sonnet
  agentjobs stats --json | jq .window.rate_limited_share
  agentjobs stats --watch 2            # live view, refreshed every 2 s
"""
)
@click.option("--minutes", "-m", default=15, show_default=True, type=click.IntRange(1, 10_080))
@click.option("--queue", "-q", default=None, help="Only this queue (e.g. claude.haiku).")
@json_option("One JSON object, for scripts.")
@click.option(
    "--watch", "-w", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS."
)
@pass_cli
def stats(
    cli: CliContext, minutes: int, queue: str | None, as_json: bool, watch: float | None
) -> None:
    """Queue depth, p99 latency, 429 share, errors, cache hits, dead letters, tokens, cost."""
    if watch is not None and watch <= 0:
        raise click.BadParameter("must be positive", param_hint="--watch")
    cli.doing = "read metrics from"
    try:
        while True:
            data = collect(cli.app, minutes, queue)
            if as_json:
                echo_json(data, one_line=True)  # one object per refresh: JSON lines
            else:
                if watch is not None:
                    click.clear()
                click.echo(render(data))
            if watch is None:
                return
            time.sleep(watch)
    except KeyboardInterrupt:
        return

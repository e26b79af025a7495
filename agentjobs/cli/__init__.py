"""The ``agentjobs`` command line: one click group, its sub-commands loaded on use.

The group knows each sub-command's name, one-line help and where it lives; a module is
imported only when its command runs or its ``--help`` is asked, so ``agentjobs --help``
and ``agentjobs sim`` load neither Celery nor the Anthropic SDK. ``main`` is a plain
click group: another click program can mount it (``cli.add_command(main, "agentjobs")``).
"""

from __future__ import annotations

import importlib
import textwrap
from typing import Any, NamedTuple

import click

from agentjobs.cli.context import CliContext, error_line


class Lazy(NamedTuple):
    """Where a sub-command lives (``module:attribute``) and its one-line help, which
    must equal the command's own (tests/test_cli.py checks)."""

    target: str
    short_help: str


#: Every sub-command, by name.
COMMANDS: dict[str, Lazy] = {
    "batches": Lazy(
        "agentjobs.cli.batches:batches",
        "The Message Batches lane: requests waiting, batches open (half price, within 24 h).",
    ),
    "console": Lazy(
        "agentjobs.cli.console:console",
        "The ops console in the browser: dead letters, sessions, batches, cost, limiter.",
    ),
    "cost": Lazy(
        "agentjobs.cli.cost:cost_command",
        "Spend recorded by the workers: per day, model, tenant and queue.",
    ),
    "dlq": Lazy(
        "agentjobs.cli.dlq:dlq",
        "Dead letters: tasks that gave up (permanent error, or retries used up).",
    ),
    "eval": Lazy(
        "agentjobs.cli.eval:eval_command",
        "Run eval cases; fail on a failed expectation or a p95/cost regression.",
    ),
    "exporter": Lazy(
        "agentjobs.cli.exporter:exporter",
        "Serve agentjobs metrics for Prometheus, summed over every worker and host.",
    ),
    "flower": Lazy(
        "agentjobs.cli.flower:flower",
        "Run Flower for agentjobs (password required outside local development).",
    ),
    "limiter": Lazy(
        "agentjobs.cli.limiter:limiter",
        "The global rate limiter of the API key in ANTHROPIC_API_KEY.",
    ),
    "recover": Lazy(
        "agentjobs.cli.recover:recover",
        "Send again the tasks the Redis broker lost.",
    ),
    "sessions": Lazy(
        "agentjobs.cli.sessions:sessions",
        "Agent sessions: list, show, approve, deny, cancel or resume; create the PostgreSQL "
        "schema; apply the retention.",
    ),
    # The simulator owns its command: it runs on its own too (python -m agentjobs.simulator)
    # and imports nothing of agentjobs above the leaves.
    "sim": Lazy(
        "agentjobs.simulator.command:sim",
        "Run the Anthropic-compatible simulator (POST /v1/messages, count_tokens, batches).",
    ),
    "stats": Lazy(
        "agentjobs.cli.stats:stats",
        "Queue depth, p99 latency, 429 share, errors, cache hits, dead letters, tokens, cost.",
    ),
    "submit": Lazy(
        "agentjobs.cli.submit:submit",
        "Run every request in FILE (JSONL; '-' for stdin) and write the results.",
    ),
    "worker": Lazy(
        "agentjobs.cli.worker:worker",
        "Run a worker for FAMILY's queue (claude.FAMILY).",
    ),
}


def load(name: str) -> click.Command:
    """The sub-command ``name``, importing its module."""
    module, _, attribute = COMMANDS[name].target.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{COMMANDS[name].target} is not a click command")
    return command


class LazyGroup(click.Group):
    """click's lazy-loading group (``list_commands`` and ``get_command`` over a table),
    whose listing reads the table instead of loading every command; and the one place
    where the errors every command may meet become one line (``context.error_line``)."""

    def __init__(self, *args: Any, lazy: dict[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            return load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        # as click lays it out: each short help cut to the width left beside the names
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                text = self.commands[name].get_short_help_str(limit)
            else:
                text = self.lazy[name].short_help
                if len(text) > limit:
                    text = textwrap.shorten(text, limit, placeholder="...", break_on_hyphens=False)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        if not isinstance(ctx.obj, CliContext):
            ctx.obj = CliContext()
        try:
            return super().invoke(ctx)
        except Exception as exc:
            line = error_line(exc, ctx.obj)
            if line is None:
                raise
            raise line from None


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(package_name="agentjobs")
def main() -> None:
    """agentjobs: Claude calls as Celery tasks.

    \b
    Quick start (a Redis on 127.0.0.1:6379; the simulator, no API key needed):
      agentjobs sim --port 8788 &
      export ANTHROPIC_BASE_URL=http://127.0.0.1:8788   # skip both for the real API
      agentjobs worker haiku -c 32 &
      agentjobs submit examples/prompts.jsonl -o results.jsonl
    """

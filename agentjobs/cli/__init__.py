"""The ``agentjobs`` command line: workers, the simulator, submit, dlq, stats, cost."""

from __future__ import annotations

from typing import Any

import click

from agentjobs import catalog
from agentjobs.errors import ConfigurationError


class _Group(click.Group):
    """Turns a configuration error (a bad AGENTJOBS_* value, no credentials) into one
    line and exit status 1, instead of a traceback from wherever it was noticed."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
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


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="""\b
Examples:
  agentjobs worker haiku                   # claude.haiku, threads pool, default concurrency
  agentjobs worker sonnet -c 64 -l info    # 64 threads, info logging
  agentjobs worker opus --autoscale 32,4   # any celery worker flag passes through
""",
)
@click.argument("family", type=click.Choice(catalog.FAMILIES))
@click.pass_context
def worker(ctx: click.Context, family: str) -> None:
    """Run a worker for FAMILY's queue (claude.FAMILY).

    Equal to `celery -A agentjobs worker -Q claude.FAMILY -P threads -c N -n FAMILY@%h`,
    N from AGENTJOBS_WORKER_CONCURRENCY (default 32). Every celery worker flag passes
    through and overrides these defaults.
    """
    from agentjobs.cli.worker import run_worker

    run_worker(family, ctx.args)


def _register() -> None:
    # Sub-commands live next to the code they drive, so each module owns its options;
    # they are imported here, after the group exists, to keep the import graph one-way.
    from agentjobs.simulator.command import sim

    main.add_command(sim)
    from agentjobs.cli.submit import submit

    main.add_command(submit)
    from agentjobs.cli.cost import cost_command

    main.add_command(cost_command)
    from agentjobs.cli.ops import ops_commands

    for command in ops_commands():  # stats, exporter, flower (issue 6)
        main.add_command(command)
    from agentjobs.cli.dlq import dlq

    main.add_command(dlq)  # dead letters (issue 5)
    from agentjobs.cli.recover import recover

    main.add_command(recover)  # submit ledger sweep (issue 5)
    from agentjobs.cli.limiter import limiter

    main.add_command(limiter)  # global rate limiter (issue 4)


_register()

"""``agentjobs worker FAMILY``: a Celery worker for one model family's queue, or
``agentjobs worker tools`` for agent sessions' tool calls (``agentjobs.tools``).

Equal to ``celery -A agentjobs worker -Q claude.FAMILY -P threads -c N -n FAMILY@%h``.
Claude calls are I/O bound (2-30 s each), so the threads pool with many threads is the
default; every other celery worker flag passes through unchanged and wins over ours
(``-I myapp.agents`` loads the modules that define agents and tools).

Every worker, however started (this command, ``celery -A agentjobs worker``, an
embedded one), runs ``Preflight`` first: one that could only dead-letter its tasks (no
credentials and no simulator, a malformed API URL) does not start.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from agentjobs import catalog
from agentjobs.agents.tool import TOOLS_QUEUE
from agentjobs.cli.context import CliContext, pass_cli
from agentjobs.settings import get_settings

#: The family name of the workers of agent sessions' tool calls (``agentjobs.tools``).
TOOLS = "tools"


def worker_argv(family: str, extra: Sequence[str] = ()) -> list[str]:
    """The celery worker argv for a family; flags in ``extra`` override the defaults."""
    if family not in (*catalog.FAMILIES, TOOLS):
        known = ", ".join((*catalog.FAMILIES, TOOLS))
        raise ValueError(f"family must be one of {known}, got {family!r}")
    given = set()
    for arg in extra:
        given.add(arg.split("=", 1)[0])
    argv = ["worker"]
    if not given & {"-Q", "--queues"}:
        argv += ["-Q", TOOLS_QUEUE if family == TOOLS else catalog.queue_for(family)]
    if not given & {"-P", "--pool"}:
        argv += ["-P", "threads"]
    if not given & {"-c", "--concurrency", "--autoscale"}:
        argv += ["-c", str(get_settings().worker_concurrency)]
    if not given & {"-n", "--hostname"}:
        argv += ["-n", f"{family}@%h"]
    return [*argv, *extra]


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    epilog="""\b
Examples:
  agentjobs worker haiku                   # claude.haiku, threads pool, default concurrency
  agentjobs worker sonnet -c 64 -l info    # 64 threads, info logging
  agentjobs worker opus --autoscale 32,4   # any celery worker flag passes through
  agentjobs worker sonnet -I myapp.agents  # load the modules defining agents and tools
  agentjobs worker tools -I myapp.agents   # agent sessions' tool calls (agentjobs.tools)
""",
)
# FAMILY, not click's {haiku|sonnet|...}, in the usage line and in a bad value's error
# ("Invalid value for 'FAMILY': 'gpt' is not one of ..."), which lists the choices.
@click.argument("family", type=click.Choice((*catalog.FAMILIES, TOOLS)), metavar="FAMILY")
@click.pass_context
@pass_cli
def worker(cli: CliContext, ctx: click.Context, family: str) -> None:
    """Run a worker for FAMILY's queue (claude.FAMILY).

    FAMILY is haiku, sonnet or opus; `tools` serves agentjobs.tools, the queue of agent
    sessions' tool calls.
    Equal to `celery -A agentjobs worker -Q claude.FAMILY -P threads -c N -n FAMILY@%h`
    (`celery -A proj agentjobs worker`: a worker of proj's app, `celery -A proj worker`),
    N from AGENTJOBS_WORKER_CONCURRENCY (default 32). Every celery worker flag passes
    through and overrides these defaults; -I/--include loads the modules that define
    agents and tools (every worker that runs their steps or tool calls needs them).
    """
    argv = worker_argv(family, ctx.args)
    cli.app.worker_main(argv)

"""The ``agentjobs`` command line: workers, the simulator, submit, dlq, stats, cost."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="agentjobs")
def main() -> None:
    """agentjobs: Claude calls as Celery tasks.

    \b
    Quick start (simulator, no API key needed):
      agentjobs sim --port 8788 &
      agentjobs worker haiku -c 32
      agentjobs submit examples/prompts.jsonl -o results.jsonl
    """


def _register() -> None:
    # Sub-commands live next to the code they drive; importing them here lazily keeps
    # `agentjobs --help` fast and lets each module own its own options.
    from agentjobs.simulator.command import sim

    main.add_command(sim)


_register()

"""The operator's commands (issue 6): ``agentjobs stats``, ``exporter`` and ``flower``."""

from __future__ import annotations

import click


def ops_commands() -> list[click.Command]:
    from agentjobs.ops.exporter import exporter
    from agentjobs.ops.flower import flower
    from agentjobs.ops.stats import stats

    return [stats, exporter, flower]

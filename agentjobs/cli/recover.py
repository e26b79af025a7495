"""``agentjobs recover``: one sweep of the submit ledger by hand (sweeper.py)."""

from __future__ import annotations

import click

from agentjobs.cli.context import CliContext, echo_json, json_option, pass_cli
from agentjobs.reliability.sweeper import sweep


@click.command(
    "recover",
    epilog="""\b
Examples:
  agentjobs recover --dry-run        # what would be re-sent, nothing sent
  agentjobs recover                  # re-send tasks the Redis broker lost
  agentjobs recover --grace 30 --json
""",
)
@click.option("--dry-run", is_flag=True, help="Report lost tasks; send nothing.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=None,
    help="Only judge entries older than this, seconds (default AGENTJOBS_LEDGER_GRACE_S).",
)
@click.option(
    "--confirm",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="Seconds between the two looks at a lost-looking task.",
)
@json_option("Print the report as JSON.")
@pass_cli
def recover(
    cli: CliContext, dry_run: bool, grace: float | None, confirm: float, as_json: bool
) -> None:
    """Send again the tasks the Redis broker lost.

    Lost: popped by a worker that died, or during a Redis restart, before it was recorded
    as unacknowledged. A task is taken for lost when its submit-ledger entry is older
    than the grace period and the task is neither queued, nor held unacked by a worker,
    nor running (idempotency lease). Re-sending uses the same task id and idempotency
    key: a copy never calls Claude twice. Workers do this on their own every
    AGENTJOBS_LEDGER_SWEEP_INTERVAL_S; exit status 0, or 1 if another sweeper held the
    lock.
    """
    # A worker's sweep holds the lock for milliseconds (seconds when it re-sends).
    report = sweep(cli.app, grace_s=grace, confirm_s=confirm, dry_run=dry_run, lock_wait_s=10.0)
    if as_json:
        echo_json(report.as_dict())
    elif report.skipped:
        click.echo(f"skipped: {report.skipped}")
    else:
        verb = "would re-send" if dry_run else "re-sent"
        click.echo(
            f"{report.checked} entries past the grace period: {report.queued} queued, "
            f"{report.unacked} held by workers, {report.leased} running; "
            f"{len(report.lost)} lost, {verb} {len(report.lost if dry_run else report.resent)}; "
            f"{report.in_ledger} tasks in flight in the ledger"
        )
        for tid in report.lost:
            click.echo(f"  lost: {tid}")
    if report.skipped == "another sweeper holds the lock":
        raise SystemExit(1)

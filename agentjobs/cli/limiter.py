"""``agentjobs limiter``: the global limiter's state per rate-limit group, and its pauses
(the spend-limit pause too: ``pause.py``, one lift for both)."""

from __future__ import annotations

import click

from agentjobs import catalog
from agentjobs.cli.context import echo_json, json_option
from agentjobs.limiter import pause as pauses
from agentjobs.limiter.admission import get_limiter


@click.group(
    "limiter",
    invoke_without_command=True,
    epilog="""\b
Examples:
  agentjobs limiter                      # every group of this API key, as a table
  agentjobs limiter show sonnet --json   # one group, for scripts
  agentjobs limiter pause opus 300       # hold new Opus calls back for 5 minutes
  agentjobs limiter resume opus          # lift any pause: the limiter's, the spend limit's
""",
)
@click.pass_context
def limiter(ctx: click.Context) -> None:
    """The global rate limiter of the API key in ANTHROPIC_API_KEY.

    Shows what the limiter sees per rate-limit group: capacity available in each
    dimension (negative: booked ahead), leases held, learned estimates and counters
    (admitted, deferred to the broker, 429s, pull-backs from headers), and the group's
    pauses: a spend limit reached (calls refused), a 429 or an operator (calls wait).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


@limiter.command()
@click.argument("groups", nargs=-1, type=click.Choice(catalog.FAMILIES))
@json_option("JSON output for scripts: a list, one object per group.")
def show(groups: tuple[str, ...], as_json: bool) -> None:
    """Show GROUPS (default: all)."""
    lim = get_limiter()
    chosen = groups or catalog.FAMILIES
    snaps = [lim.snapshot(g) for g in chosen]
    paused = {g: pauses.active(g, lim) for g in chosen}
    if as_json:
        for snap in snaps:
            snap["pauses"] = [p.to_json() for p in paused[snap["group"]]]
        echo_json(snaps)
        return
    click.echo(f"API key fingerprint {lim.key_fingerprint}")
    header = (
        f"{'group':7} {'dim':5} {'limit':>10} {'available':>11} {'capacity':>10} {'booked s':>9}"
    )
    for snap in snaps:
        click.echo("")
        click.echo(header)
        for dim, d in snap["dimensions"].items():
            click.echo(
                f"{snap['group']:7} {dim:5} {d['limit']:>10,} {d['available']:>11,.1f} "
                f"{d['capacity']:>10,.1f} {d['booked_ahead_s']:>9.2f}"
            )
        for p in paused[snap["group"]]:
            lift = pauses.RESUME_COMMAND.format(group=p.group)
            click.echo(f"  PAUSED: {p.describe()}; lift with `{lift}`")
        click.echo(
            f"  leases {snap['leases']}/{snap['concurrency']}  paused {snap['paused_s']:.1f}s  "
            f"admitted {snap['admitted']}  deferred {snap['deferred']}  "
            f"429s {snap['rate_limited']}  pull-backs {snap['pullbacks']}  "
            f"mean wait {snap['mean_wait_ms']:.0f} ms  input ratio {snap['input_ratio']:.3f}  "
            f"output estimate {snap['output_estimate']:.0f}"
        )


@limiter.command()
@click.argument("group", type=click.Choice(catalog.FAMILIES))
@click.argument("seconds", type=click.FloatRange(min=0, min_open=True))
@click.option("--reason", default="paused by an operator", show_default=True)
def pause(group: str, seconds: float, reason: str) -> None:
    """Hold new calls of GROUP back for SECONDS (all workers of this key); they wait."""
    get_limiter().pause(group, seconds, reason)
    click.echo(f"{group}: paused for {seconds:g}s")


@limiter.command()
@click.argument("group", type=click.Choice(catalog.FAMILIES))
@json_option()
def resume(group: str, as_json: bool) -> None:
    """Lift every pause of GROUP: a spend limit's, a 429's, an operator's."""
    resume_group(group, as_json)


def resume_group(group: str, as_json: bool) -> None:
    """``agentjobs limiter resume`` (and its alias ``agentjobs dlq resume``)."""
    lifted = pauses.resume(group, get_limiter())
    if as_json:
        echo_json(
            {"group": group, "was_paused": bool(lifted), "lifted": [p.to_json() for p in lifted]}
        )
        return
    if not lifted:
        click.echo(f"{group}: was not paused")
        return
    for p in lifted:
        click.echo(f"{group}: lifted {p.describe()}")
    if any(p.kind == "spend_limit" for p in lifted):
        queue = catalog.queue_for(group)
        click.echo(
            f"calls refused meanwhile are dead letters: agentjobs dlq replay --all --queue {queue}"
        )

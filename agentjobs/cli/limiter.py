"""``agentjobs limiter``: the global limiter's state per rate-limit group, and its pauses."""

from __future__ import annotations

import json
from typing import Any

import click
import redis

from agentjobs import catalog


def _limiter() -> Any:
    from agentjobs.limiter.admission import get_limiter

    return get_limiter()


def _unreachable(exc: Exception) -> click.ClickException:
    from agentjobs.settings import get_settings

    url = get_settings().redis_url
    return click.ClickException(f"state store {url} (AGENTJOBS_REDIS_URL) unreachable: {exc}")


@click.group(
    "limiter",
    invoke_without_command=True,
    epilog="""\b
Examples:
  agentjobs limiter                      # every group of this API key, as a table
  agentjobs limiter show sonnet --json   # one group, for scripts
  agentjobs limiter pause opus 300       # hold new Opus calls back for 5 minutes
  agentjobs limiter resume opus          # lift the pause
""",
)
@click.pass_context
def limiter(ctx: click.Context) -> None:
    """The global rate limiter of the API key in ANTHROPIC_API_KEY.

    Shows what the limiter sees per rate-limit group: capacity available in each
    dimension (negative: booked ahead), leases held, pause, learned estimates and
    counters (admitted, deferred to the broker, 429s, pull-backs from headers).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(show)


@limiter.command()
@click.argument("groups", nargs=-1, type=click.Choice(catalog.FAMILIES))
@click.option("--json", "as_json", is_flag=True, help="print JSON (one object per group)")
def show(groups: tuple[str, ...], as_json: bool) -> None:
    """Show GROUPS (default: all)."""
    lim = _limiter()
    try:
        snaps = [lim.snapshot(g) for g in groups or catalog.FAMILIES]
    except redis.RedisError as exc:
        raise _unreachable(exc) from None
    if as_json:
        click.echo(json.dumps(snaps, indent=2))
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
def pause(group: str, seconds: float) -> None:
    """Hold new calls of GROUP back for SECONDS (all workers of this key)."""
    try:
        _limiter().pause(group, seconds)
    except redis.RedisError as exc:
        raise _unreachable(exc) from None
    click.echo(f"{group}: paused for {seconds:g}s")


@limiter.command()
@click.argument("group", type=click.Choice(catalog.FAMILIES))
def resume(group: str) -> None:
    """Lift a pause of GROUP."""
    try:
        _limiter().resume(group)
    except redis.RedisError as exc:
        raise _unreachable(exc) from None
    click.echo(f"{group}: resumed")

"""``agentjobs cost``: spend by day, model, tenant and queue, from the per-day totals."""

from __future__ import annotations

from typing import Any

import click

from agentjobs.cli.context import CliContext, echo_json, json_option, pass_cli
from agentjobs.spend import budget, cost

_SECTIONS = ("day", "model", "tenant", "queue")


def report(days: int) -> dict[str, Any]:
    """The last ``days`` UTC days (newest first) and their sums per model, tenant, queue."""
    per_day = [cost.day_totals(d) for d in cost.recent_days(days)]
    by: dict[str, dict[str, dict[str, float]]] = {d: {} for d in cost.DIMENSIONS}
    for t in per_day:
        for dim, rows in t.by.items():
            for name, row in rows.items():
                acc = by[dim].setdefault(name, {m: 0.0 for m in cost.MEASURES})
                for measure, value in row.items():
                    acc[measure] += value
    total = {m: sum(t.totals[m] for t in per_day) for m in cost.MEASURES}
    return {
        "days": [t.as_dict() for t in per_day],
        "by": by,
        "total_usd": total["usd"],
        "total": total,
        "budget": _budget_today(),
    }


def _budget_today() -> dict[str, Any]:
    overall, _ = budget.caps(None)
    out: dict[str, Any] = {
        "action": budget.get_settings().budget_action,
        "overall_cap_usd": overall,
        "spent_usd": cost.spent_usd(),
        "in_flight_usd": budget.in_flight_usd(),
    }
    return out


def _fmt_row(name: str, row: dict[str, float]) -> str:
    hit_rate = row["hits"] / row["calls"] if row["calls"] else 0.0
    return (
        f"{name:<34} {int(row['calls']):>9} {hit_rate:>6.1%} {row['usd']:>12.4f} "
        f"{row['saved_usd']:>11.4f} {int(row['in']):>12} {int(row['out']):>11}"
    )


_HEADER = (
    f"{'':<34} {'calls':>9} {'hits':>6} {'usd':>12} {'saved_usd':>11} {'in_tokens':>12} "
    f"{'out_tokens':>11}"
)


@click.command(
    "cost",
    epilog="""\b
Examples:
  agentjobs cost                    # today and the 6 days before, every section
  agentjobs cost --days 30 --by tenant
  agentjobs cost --json | jq .by.model
""",
)
@click.option("--days", default=7, show_default=True, type=click.IntRange(min=1, max=366),
              help="How many UTC days back, today included.")  # fmt: skip
@click.option("--by", "sections", multiple=True, type=click.Choice(_SECTIONS),
              help="Only these sections (repeatable); default: all.")  # fmt: skip
@json_option("One JSON object, for scripts.")
@pass_cli
def cost_command(cli: CliContext, days: int, sections: tuple[str, ...], as_json: bool) -> None:
    """Spend recorded by the workers: per day, model, tenant and queue.

    Costs come from the price table (AGENTJOBS_PRICES_FILE overrides it); response-cache
    hits cost nothing and their avoided cost is shown as saved_usd. Days are UTC.
    """
    cli.doing = "read the cost totals from"
    data = report(days)
    if as_json:
        echo_json(data)
        return
    show = set(sections or _SECTIONS)
    if "day" in show:
        click.echo(f"{'by day (UTC)':<34}" + _HEADER[34:])
        for d in data["days"]:
            click.echo(_fmt_row(d["day"], {m: d[m] for m in cost.MEASURES}))
        click.echo(_fmt_row("total", data["total"]))
    for dim in ("model", "tenant", "queue"):
        if dim not in show:
            continue
        rows = sorted(data["by"][dim].items(), key=lambda kv: -kv[1]["usd"])
        click.echo("")
        click.echo(f"{'by ' + dim:<34}" + _HEADER[34:])
        if not rows:
            click.echo("  (nothing recorded)")
        for name, row in rows:
            click.echo(_fmt_row(name, row))
    b = data["budget"]
    cap = b["overall_cap_usd"]
    click.echo("")
    click.echo(
        f"today: spent ${b['spent_usd']:.4f}, in flight ${b['in_flight_usd']:.4f}, "
        + (f"overall cap ${cap:.2f}" if cap is not None else "no overall cap")
        + f" (action: {b['action']})"
    )

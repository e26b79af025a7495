"""Spend: per hour (the per-minute metrics), per day, model, tenant and queue (the
per-day totals ``spend/cost.py`` keeps, the ones budgets and ``agentjobs cost`` read)."""

from __future__ import annotations

import calendar
import time

from agentjobs.console.markup import h, join, link, page, table, usd
from agentjobs.console.plot import Minutes, chart
from agentjobs.console.web import Request, Response, whole_number
from agentjobs.spend import cost


def _row(name: str, row: dict[str, float]) -> list[object]:
    hit = row["hits"] / row["calls"] if row["calls"] else 0.0
    return [
        name,
        int(row["calls"]),
        f"{hit:.1%}",
        usd(row["usd"]),
        usd(row["saved_usd"]),
        int(row["in"]),
        int(row["out"]),
    ]


#: The longest table of days (the per-day totals are kept AGENTJOBS_COST_RETENTION_DAYS).
MAX_DAYS = 366

HEAD = ["", "calls", "cache hits", "cost", "saved", "input tokens", "output tokens"]


def cost_page(request: Request) -> Response:
    days = whole_number(request.query, "days", 7, 1, MAX_DAYS)
    per_day = [cost.day_totals(d) for d in cost.recent_days(days)]
    by: dict[str, dict[str, dict[str, float]]] = {d: {} for d in cost.DIMENSIONS}
    for t in per_day:
        for dim, rows in t.by.items():
            for name, row in rows.items():
                acc = by[dim].setdefault(name, dict.fromkeys(cost.MEASURES, 0.0))
                for measure, value in row.items():
                    acc[measure] += value
    total = {m: sum(t.totals[m] for t in per_day) for m in cost.MEASURES}
    oldest = per_day[-1].day
    start = calendar.timegm(time.strptime(oldest, "%Y-%m-%d"))
    daily = chart(
        f"cost per UTC day, last {days} days",
        start,
        86_400,
        {"usd": [t.totals["usd"] for t in reversed(per_day)]},
        "$",
    )
    hourly = Minutes(24, bins=24)
    per_hour = hourly.chart("cost per hour, last 24 h", {"usd": hourly.total("cost_usd")}, "$")
    sections = [
        h(
            "<h2>By day (UTC)</h2>{}",
            table(HEAD, [*(_row(t.day, t.totals) for t in per_day), _row("total", total)]),
        ),
    ]
    for dim in cost.DIMENSIONS:
        ranked = sorted(by[dim].items(), key=lambda kv: -kv[1]["usd"])
        sections.append(
            h(
                "<h2>By {}</h2>{}",
                dim,
                table(HEAD, [_row(n, r) for n, r in ranked], empty="nothing recorded"),
            )
        )
    picker = join(
        (
            h("<b>{} days</b>", n)
            if n == days
            else link(request, "/cost", f"{n} days", days=str(n))
            for n in (7, 30, 90)
        ),
        " &middot; ",
    )
    body = h(
        "<p>At list price from the price table; response-cache hits cost nothing (saved "
        "shows what they avoided). {}</p>"
        '<div class="charts">{}{}</div>{}',
        picker,
        per_hour,
        daily,
        join(sections),
    )
    return Response(body=page(request, "Cost", body, section="/cost"))

"""The front page: what is happening now, and the last hours as charts."""

from __future__ import annotations

import math
from typing import Any

from agentjobs.console.markup import Safe, h, join, link, page, table, usd
from agentjobs.console.plot import Minutes
from agentjobs.console.web import BadQuery, Request, Response
from agentjobs.ops import depth, metrics, stats

#: The charts' window: a quarter of an hour to a week (the per-minute metrics' retention,
#: a day by default, bounds what there is to show).
MIN_HOURS, MAX_HOURS = 0.25, 24 * 7


def hours_of(request: Request, default: float = 6.0) -> float:
    """The ``hours`` query parameter; BadQuery (a 400 page) for anything but a number
    of hours in range: a typo shows as one, not as a window silently changed."""
    raw = request.query.get("hours")
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not MIN_HOURS <= value <= MAX_HOURS:  # NaN fails both comparisons
        raise BadQuery(f"hours must be a number from {MIN_HOURS:g} to {MAX_HOURS:g}, not {raw!r}")
    return value


def hours_picker(request: Request, path: str, hours: float) -> Safe:
    choices = (1, 6, 24)
    return join(
        (
            h("<b>{}h</b>", c) if c == hours else link(request, path, f"{c}h", hours=str(c))
            for c in choices
        ),
        " &middot; ",
    )


def activity_charts(m: Minutes, queue: str | None = None) -> Safe:
    """The charts the overview and the limiter page share."""
    w: dict[str, str] = {"queue": queue} if queue else {}
    return join(
        [
            m.chart(
                "tasks finished",
                {
                    "succeeded": m.total("tasks", outcome="succeeded", **w),
                    "dead-lettered": m.total("tasks", outcome="dead_lettered", **w),
                },
            ),
            m.chart(
                "API requests and 429s",
                {
                    "requests": m.total("api_requests", **w),
                    "429s": m.total("rate_limited", **w),
                },
            ),
            m.chart("cost at list price", {"usd": m.total("cost_usd", **w)}, "$"),
            m.chart("limiter wait", m.waits("limiter_wait_seconds", **w), "s"),
        ]
    )


def overview_page(request: Request, app: Any) -> Response:
    hours = hours_of(request)
    m = Minutes(hours)
    queues = depth.known_queues()
    now = stats.live(app, queues)
    window = metrics.Snapshot()
    for s in m.snaps:
        window.merge(s)
    fig = stats.figures(window)
    depths = now["queue_depth"] or {}
    rows = [
        [q, depths.get(q, "?"), now["calls_in_flight"].get(q, 0), now["workers"].get(q, 0)]
        for q in queues
    ]
    lane = now["batch_lane"]
    summary = table(
        ["in the window", "value"],
        [
            ["tasks succeeded", fig["tasks_succeeded"]],
            ["tasks dead-lettered", fig["tasks_dead_lettered"]],
            ["API requests", fig["api_requests"]],
            ["429s", fig["rate_limited"]],
            ["cost", usd(fig["cost_usd"])],
            ["limiter wait p99", _seconds(fig["limiter_wait"]["p99_s"])],
            ["call p99", _seconds(fig["call"]["p99_s"])],
        ],
    )
    pauses = [
        h(
            '<p class="paused">{} paused: {} ({}s left)</p>',
            p["group"],
            p["reason"],
            p["seconds_left"],
        )
        for p in now["pauses"]
    ]
    body = h(
        "<p>{} &middot; {}</p>{}"
        '<div class="charts">{}</div>'
        "<h2>Now</h2>{}{}"
        "<p>dead letters: {} &middot; batch lane: {} waiting, open {}</p>"
        "<h2>Totals of the window</h2>{}",
        m.describe(),
        hours_picker(request, "/", hours),
        h('<p class="error">queue depth: {}</p>', now["queue_depth_error"])
        if now["queue_depth_error"]
        else "",
        activity_charts(m),
        table(["queue", "waiting", "in flight", "workers"], rows),
        join(pauses),
        link(request, "/deadletters", now["dead_letters"]),
        lane["waiting"],
        ", ".join(f"{k} {v}" for k, v in lane["open_by_state"].items()) or "none",
        summary,
    )
    return Response(body=page(request, "Overview", body, section="/"))


def _seconds(v: float | None) -> str:
    return "" if v is None else f"{v:.3f} s"

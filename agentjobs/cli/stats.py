"""``agentjobs stats``: the figures of ``ops/stats.py`` as tables or JSON, once or live."""

from __future__ import annotations

import time
from typing import Any

import click

from agentjobs.cli.context import CliContext, echo_json, json_option, pass_cli
from agentjobs.cli.table import _ANSI, Painter, sparkline, table, usd, use_colour, visible_len
from agentjobs.cli.table import width as terminal_width
from agentjobs.ops.stats import collect


@click.command(
    epilog="""\b
Examples:
  agentjobs stats                      # last 15 minutes, minute by minute, and all time
  agentjobs stats --minutes 60 --queue claude.sonnet
  agentjobs stats --json | jq .window.rate_limited_share
  agentjobs stats --json | jq .per_minute.rate_limited
  agentjobs stats --watch 2            # live view, refreshed every 2 s

\b
Colour only on a terminal, never with NO_COLOR set.
"""
)
@click.option("--minutes", "-m", default=15, show_default=True, type=click.IntRange(1, 10_080))
@click.option("--queue", "-q", default=None, help="Only this queue (e.g. claude.haiku).")
@json_option("One JSON object, for scripts.")
@click.option(
    "--watch", "-w", type=float, default=None, metavar="SECONDS", help="Refresh every SECONDS."
)
@pass_cli
def stats(
    cli: CliContext, minutes: int, queue: str | None, as_json: bool, watch: float | None
) -> None:
    """Queue depth, p99 latency, 429 share, errors, cache hits, dead letters, tokens, cost."""
    if watch is not None and watch <= 0:
        raise click.BadParameter("must be positive", param_hint="--watch")
    cli.doing = "read metrics from"
    colour = use_colour()
    try:
        while True:
            data = collect(cli.app, minutes, queue)
            if as_json:
                echo_json(data, one_line=True)  # one object per refresh: JSON lines
            else:
                if watch is not None:
                    click.clear()
                click.echo(render(data, terminal_width(), colour))
            if watch is None:
                return
            time.sleep(watch)
    except KeyboardInterrupt:
        return


# -- drawing ---------------------------------------------------------------------


def _n(v: Any) -> str:
    """A count or ratio as the table shows it: thousands separated, '-' for none."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:,}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.2f}%"


def _s(v: float | None) -> str:
    """Seconds: three significant digits below 100 s."""
    if v is None:
        return "-"
    return f"{v:.3g}" if v < 100 else f"{v:,.0f}"


def _figures(data: dict[str, Any], p: Painter) -> list[str]:
    n, win, tot = data["window_minutes"], data["window"], data["total"]
    rows: list[list[str]] = []
    for key, label in (
        ("tasks_published", "tasks published"),
        ("tasks_succeeded", "tasks succeeded"),
        ("tasks_failed", "tasks failed"),
        ("tasks_dead_lettered", "tasks dead-lettered"),
        ("retries", "retries"),
        ("api_requests", "API requests"),
        ("rate_limited", "429s"),
    ):
        bad = key in ("tasks_failed", "tasks_dead_lettered", "rate_limited")
        rows.append([label, p.bad(_n(win[key]), bad and win[key] > 0), _n(tot[key])])
    for key, label in (
        ("rate_limited_share", "429 share"),
        ("api_error_rate", "API error rate"),
        ("cache_hit_rate", "cache hit rate"),
    ):
        rows.append([label, _pct(win[key]), _pct(tot[key])])
    for kind, tokens in tot["tokens"].items():
        rows.append([f"tokens {kind.replace('_', ' ')}", _n(win["tokens"][kind]), _n(tokens)])
    rows.append(["cost USD", usd(win["cost_usd"]), usd(tot["cost_usd"])])
    classes = sorted(set(win["errors_by_class"]) | set(tot["errors_by_class"]))
    for c in classes:
        ours = win["errors_by_class"].get(c, 0)
        rows.append([f"errors {c}", p.bad(_n(ours), ours > 0), _n(tot["errors_by_class"][c])])
    return table(rows, header=["", f"last {n} min", "total"])


def _per_minute(data: dict[str, Any], width: int, p: Painter) -> list[str]:
    pm = data["per_minute"]
    series = (
        ("tasks", pm["tasks_finished"], _n),
        ("429s", pm["rate_limited"], _n),
        ("USD", pm["cost_usd"], usd),
    )
    # Columns: label, spark, sum, peak, 2 apart; the numbers and labels take what they
    # need (headers included), the spark the rest of the width.
    sums = [f(sum(v)) for _, v, f in series]
    peaks = [f(max(v, default=0)) for _, v, f in series]
    sum_w = max(len(x) for x in ["in window", *sums])
    peak_w = max(len(x) for x in ["peak/min", *peaks])
    label_w = max(len(label) for label, _, _ in series)
    room = width - label_w - sum_w - peak_w - 3 * 2
    minutes = len(pm["rate_limited"])
    cells = max(8, min(minutes, room))
    per = -(-minutes // cells)
    rows = []
    for (label, values, _), total, peak in zip(series, sums, peaks, strict=True):
        line = sparkline(values, cells)
        rows.append([label, p.bad(line, label == "429s" and any(values)), total, peak])
    unit = "1 cell = 1 min" if per == 1 else f"1 cell = {per} min"
    # The spark column's header is its widest cell: the longest wording that fits the
    # room (a narrow terminal gets the short one, not a cut table).
    wordings = (f"per minute, oldest left ({unit})", f"per minute ({unit})", unit)
    spark_h = next((w for w in wordings if len(w) <= max(room, cells)), wordings[-1])
    head = ["", spark_h, "in window", "peak/min"]
    return table(rows, header=head, right=[False, False, True, True])


def _latency(data: dict[str, Any]) -> list[str]:
    n, win, tot = data["window_minutes"], data["window"], data["total"]
    rows = []
    for key, label in (
        ("queue_wait", "queue wait"),
        ("limiter_wait", "limiter wait"),
        ("first_token", "first token (TTFT)"),
        ("call", "API call"),
        ("end_to_end", "end to end"),
    ):
        w, t = win[key], tot[key]
        rows.append([label, _s(w["p50_s"]), _s(w["p99_s"]), _s(t["p50_s"]), _s(t["p99_s"])])
    head = ["seconds", f"p50 {n}m", f"p99 {n}m", "p50 all", "p99 all"]
    return table(rows, header=head)


def _live(data: dict[str, Any], width: int, p: Painter) -> list[str]:
    lv = data["live"]
    depths = lv["queue_depth"]
    queues = sorted(set(lv["calls_in_flight"]) | set(lv["workers"]) | set(depths or {}))
    rows = []
    for q in queues:
        depth = "?" if depths is None else _n(depths.get(q, 0))
        workers = lv["workers"].get(q, 0)
        rows.append([q, depth, _n(lv["calls_in_flight"].get(q, 0)), _n(workers)])
    lines = table(rows, header=["queue", "depth", "in flight", "workers"])
    if depths is None:
        lines.append(p.bad(f"queue depth unavailable: {lv['queue_depth_error']}"))
    dead = lv["dead_letters"]
    lines.append(f"dead letters stored: {p.bad(_n(dead), bool(dead))}")
    bl = lv["batch_lane"]
    states = " ".join(f"{k}={v:,}" for k, v in bl["open_by_state"].items()) or "-"
    first = f"batch lane: {bl['waiting']:,} waiting (oldest {bl['oldest_age_s']:.0f}s)"
    rest = f"open batches {states}, saved ${bl['saved_usd']:.4f}"
    if len(first) + 2 + len(rest) <= width:
        lines.append(f"{first}, {rest}")
    else:  # two lines on a narrow terminal, rather than the saving cut off
        lines += [first + ",", "  " + rest]
    return lines


def _pauses(data: dict[str, Any], p: Painter) -> list[str]:
    """The rate-limit groups' pauses (limiter and spend limit), each with its lift."""
    from agentjobs.limiter.pause import RESUME_COMMAND, Pause

    found = [Pause(**raw) for raw in data["live"]["pauses"]]
    if not found:
        return ["paused groups: none"]
    lines = ["paused groups:"]
    for x in found:
        lines.append(p.bad(f"  {x.group}: {x.describe()}"))
    for g in sorted({x.group for x in found}):
        lines.append(f"  lift with `{RESUME_COMMAND.format(group=g)}`")
    return lines


def _sessions(data: dict[str, Any]) -> list[str]:
    """Agent sessions: ended by status, still open, and size and cost per session."""
    s = data.get("sessions")
    if not s or not (s["total"]["started"] or s["total"]["ended"]):
        return ["agent sessions: none"]
    win, tot = s["window"], s["total"]
    rows = [["started", _n(win["started"]), _n(tot["started"])]]
    for status in sorted(set(win["by_status"]) | set(tot["by_status"])):
        rows.append(
            [f"ended {status}", _n(win["by_status"].get(status, 0)), _n(tot["by_status"][status])]
        )
    rows.append(["open now", "", _n(tot["open"])])
    for key, label, fmt in (
        ("steps", "steps", _n),
        ("tool_calls", "tool calls", _n),
        ("cost_usd", "USD", usd),
    ):
        for q in ("p50", "p95"):
            rows.append([f"{label} per session {q}", _q(win[key][q], fmt), _q(tot[key][q], fmt)])
    n = data["window_minutes"]
    return table(rows, header=["agent sessions", f"last {n} min", "total"])


def _q(v: float | None, fmt: Any) -> str:
    """A quantile of a count or of dollars (interpolated: a count gets one decimal)."""
    if v is None:
        return "-"
    return fmt(v) if fmt is usd else f"{v:.1f}"


def _fit(lines: list[str], width: int) -> list[str]:
    """Lines cut to ``width`` (a long reason must not wrap the table)."""
    out = []
    for x in lines:
        if visible_len(x) > width:  # cut the plain text: a cut colour code would bleed
            x = _ANSI.sub("", x)[: width - 1] + "…"
        out.append(x)
    return out


def render(data: dict[str, Any], width: int = 80, colour: bool = False) -> str:
    """The human view of :func:`agentjobs.ops.stats.collect`'s data, ``width`` columns."""
    p = Painter(colour)
    title = "agentjobs stats" + (f" for {data['queue']}" if data["queue"] else ": all queues")
    stamp = time.strftime("%H:%M:%S UTC", time.gmtime(data["generated_at"]))
    gap = max(1, width - len(title) - len(stamp))
    sections = [
        [p.bold(title) + " " * gap + p.dim(stamp)],
        _figures(data, p),
        _per_minute(data, width, p),
        _latency(data),
        _live(data, width, p),
        _pauses(data, p),
        _sessions(data),
    ]
    out: list[str] = []
    for lines in sections:
        if lines:
            out += [*_fit(lines, width), ""]
    return "\n".join(out).rstrip("\n")

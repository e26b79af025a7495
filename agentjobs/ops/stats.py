"""The figures operators watch, for the last N minutes and in total (``agentjobs stats``).

Everything is read from the same Redis aggregates the exporter serves (``metrics.py``),
so the table, ``--json`` and Prometheus agree; queue depth comes from the broker of the
app handed in; the rate-limit groups' pauses from the state store (``pause.py``).
"""

from __future__ import annotations

import time
from typing import Any

from agentjobs import catalog
from agentjobs.lanes import records as batch_lane
from agentjobs.limiter import pause
from agentjobs.ops import depth, metrics

_LATENCIES = ("queue_wait_seconds", "limiter_wait_seconds", "call_seconds", "end_to_end_seconds")


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 6) if b else None


def figures(snap: metrics.Snapshot, queue: str | None = None) -> dict[str, Any]:
    """The figures of one snapshot (optionally one queue), as plain JSON values."""
    w: dict[str, str] = {"queue": queue} if queue else {}
    outcomes = snap.by("tasks", "outcome", **w)
    requests = snap.sum("api_requests", **w)
    by_status = snap.by("api_requests", "status", **w)
    limited = snap.sum("rate_limited", **w)
    errors = sum(n for s, n in by_status.items() if s not in ("200", "429"))
    hits, misses = snap.sum("cache_hits", **w), snap.sum("cache_misses", **w)
    out: dict[str, Any] = {
        "tasks_published": int(snap.sum("tasks_published", **w)),
        "tasks_started": int(snap.sum("tasks_started", **w)),
        **{f"tasks_{o}": int(outcomes.get(o, 0)) for o in metrics.OUTCOMES},
        "retries": int(snap.sum("retries", **w)),
        "retries_by_class": {
            k: int(v) for k, v in sorted(snap.by("retries", "failure_class", **w).items())
        },
        "errors_by_class": {
            k: int(v) for k, v in sorted(snap.by("errors", "failure_class", **w).items())
        },
        "dead_lettered_by_class": {
            k: int(v) for k, v in sorted(snap.by("dead_lettered", "failure_class", **w).items())
        },
        "api_requests": int(requests),
        "api_requests_by_status": {k: int(v) for k, v in sorted(by_status.items())},
        "rate_limited": int(limited),
        "rate_limited_share": _ratio(limited, requests),
        "api_error_rate": _ratio(errors, requests),
        "cache_hits": int(hits),
        "cache_misses": int(misses),
        "cache_hit_rate": _ratio(hits, hits + misses),
        "tokens": {k: int(snap.by("tokens", "kind", **w).get(k, 0)) for k in metrics.TOKEN_KINDS},
        "cost_usd": round(snap.sum("cost_usd", **w), 10),
    }
    for name in _LATENCIES:
        key = name.removesuffix("_seconds")
        counts = snap.histogram(name, **w)
        p50, p99 = metrics.quantile(counts, 0.5), metrics.quantile(counts, 0.99)
        out[key] = {
            "count": sum(counts),
            "p50_s": None if p50 is None else round(p50, 4),
            "p99_s": None if p99 is None else round(p99, 4),
        }
    return out


def live(app: Any, queues: list[str]) -> dict[str, Any]:
    """Figures of the moment: queue depth (broker), calls in flight, workers, dead letters."""
    depths: dict[str, int] | None = None
    error: str | None = None
    try:
        depths = depth.queue_depths(app, queues)
    except Exception as exc:  # the broker down: say so, show the rest
        error = str(exc)
    flight = metrics.calls_in_flight()
    return {
        "queue_depth": depths,
        "queue_depth_error": error,
        "calls_in_flight": {q: sum(n for (fq, _), n in flight.items() if fq == q) for q in queues},
        "workers": metrics.workers_alive(queues),
        "dead_letters": metrics.dead_letter_size(),
        "pauses": pauses(queues),
        "batch_lane": batch_lane_now(),
    }


def batch_lane_now() -> dict[str, Any]:
    """The Message Batches lane: requests waiting (per group, the oldest's age), open
    batches by state, and what answering them at the batch price saved, in total."""
    over = batch_lane.overview()
    return {
        "waiting": over["waiting_total"],
        "waiting_by_group": over["waiting"],
        "oldest_age_s": over["oldest_age_s"],
        "open_by_state": over["open_by_state"],
        "saved_usd": round(over["stats"].get("saved_usd", 0.0), 6),
    }


def pauses(queues: list[str]) -> list[dict[str, Any]]:
    """The pauses of the rate-limit groups served by ``queues`` (``pause.py``)."""
    groups = [f for f in catalog.FAMILIES if catalog.queue_for(f) in queues]
    return [p.to_json() for g in groups for p in pause.active(g)]


def collect(app: Any, minutes: int, queue: str | None = None) -> dict[str, Any]:
    """Everything ``agentjobs stats --json`` prints."""
    window, total = metrics.read_window(minutes), metrics.read_total()
    queues = (
        [queue]
        if queue
        else sorted(set(depth.known_queues()) | total.label_values("queue") - {"unknown"})
    )
    return {
        "generated_at": round(time.time(), 3),
        "window_minutes": minutes,
        "queue": queue,
        "live": live(app, queues),
        "window": figures(window, queue),
        "total": figures(total, queue),
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, dict):
        return " ".join(f"{k}={_fmt(x)}" for k, x in v.items()) or "-"
    return str(v)


def render(data: dict[str, Any]) -> str:
    """The human table: one row per figure, columns last-N-minutes and total."""
    n = data["window_minutes"]
    win, tot = data["window"], data["total"]
    rows: list[tuple[str, str, str]] = []

    def row(label: str, a: Any, b: Any) -> None:
        rows.append((label, _fmt(a), _fmt(b)))

    for key in ("tasks_published", "tasks_succeeded", "tasks_failed", "tasks_dead_lettered"):
        row(key.replace("_", " "), win[key], tot[key])
    row("retries", win["retries"], tot["retries"])
    row("errors by class", win["errors_by_class"], tot["errors_by_class"])
    row("API requests", win["api_requests"], tot["api_requests"])
    row("429s", win["rate_limited"], tot["rate_limited"])
    row("429 share", _pct(win["rate_limited_share"]), _pct(tot["rate_limited_share"]))
    row("API error rate", _pct(win["api_error_rate"]), _pct(tot["api_error_rate"]))
    row("cache hit rate", _pct(win["cache_hit_rate"]), _pct(tot["cache_hit_rate"]))
    for kind in metrics.TOKEN_KINDS:
        row(f"tokens {kind}", win["tokens"][kind], tot["tokens"][kind])
    row("cost USD", f"{win['cost_usd']:.4f}", f"{tot['cost_usd']:.4f}")
    for key in ("call", "end_to_end", "queue_wait", "limiter_wait"):
        for q in ("p50_s", "p99_s"):
            row(f"{key.replace('_', ' ')} {q[:3]} (s)", win[key][q], tot[key][q])
    lv = data["live"]
    width = max(len(r[0]) for r in rows)
    title = f"agentjobs stats{' for ' + data['queue'] if data['queue'] else ''}"
    lines = [title, f"{'':<{width}}  {'last ' + str(n) + ' min':>16}  {'total':>16}"]
    lines += [f"{a:<{width}}  {b:>16}  {c:>16}" for a, b, c in rows]
    lines.append("")
    depths = lv["queue_depth"]
    lines.append(
        "queue depth: "
        + (_fmt(depths) if depths is not None else f"unavailable ({lv['queue_depth_error']})")
    )
    lines.append("calls in flight: " + _fmt(lv["calls_in_flight"]))
    lines.append("workers: " + _fmt(lv["workers"]))
    lines.append("dead letters stored: " + _fmt(lv["dead_letters"]))
    bl = lv["batch_lane"]
    lines.append(
        f"batch lane: {bl['waiting']:,} waiting (oldest {bl['oldest_age_s']:.0f}s), "
        f"open batches {_fmt(bl['open_by_state'])}, saved ${bl['saved_usd']:.4f}"
    )
    lines.append("paused groups: " + ("none" if not lv["pauses"] else ""))
    from agentjobs.limiter.pause import RESUME_COMMAND, Pause

    for p in (Pause(**raw) for raw in lv["pauses"]):
        lift = RESUME_COMMAND.format(group=p.group)
        lines.append(f"  {p.group}: {p.describe()}; lift with `{lift}`")
    return "\n".join(lines)


def _pct(v: float | None) -> str | None:
    return None if v is None else f"{v * 100:.2f}%"

"""The figures operators watch, for the last N minutes, minute by minute, and in total
(``agentjobs stats``; the table is drawn by ``cli/stats.py``).

Everything is read from the same Redis aggregates the exporter serves (``metrics.py``),
so the table, ``--json`` and Prometheus agree; queue depth comes from the broker of the
app handed in; the rate-limit groups' pauses from the state store (``pause.py``); agent
sessions' figures from ``session_metrics.py``.
"""

from __future__ import annotations

import time
from typing import Any

from agentjobs import catalog
from agentjobs.lanes import records as batch_lane
from agentjobs.limiter import pause
from agentjobs.ops import depth, metrics, session_metrics

_LATENCIES = (
    "queue_wait_seconds",
    "limiter_wait_seconds",
    "call_seconds",
    "first_token_seconds",
    "end_to_end_seconds",
)


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


def per_minute(first: int, snaps: list[metrics.Snapshot], queue: str | None) -> dict[str, Any]:
    """Series a value a minute, oldest first: tasks finished (any outcome), API requests,
    429s, cost; ``start`` is the first minute's Unix time."""
    w: dict[str, str] = {"queue": queue} if queue else {}
    return {
        "start": first * 60,
        "tasks_finished": [int(s.sum("tasks", **w)) for s in snaps],
        "api_requests": [int(s.sum("api_requests", **w)) for s in snaps],
        "rate_limited": [int(s.sum("rate_limited", **w)) for s in snaps],
        "cost_usd": [round(s.sum("cost_usd", **w), 10) for s in snaps],
    }


def collect(app: Any, minutes: int, queue: str | None = None) -> dict[str, Any]:
    """Everything ``agentjobs stats --json`` prints."""
    first, minute_snaps = metrics.read_minutes(minutes)
    window, total = metrics.Snapshot(), metrics.read_total()
    for snap in minute_snaps:  # one read: the window is its minutes summed
        window.merge(snap)
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
        "per_minute": per_minute(first, minute_snaps, queue),
        "total": figures(total, queue),
        # Agent sessions are counted per agent, not per queue: the same with --queue.
        "sessions": {
            "window": session_metrics.snapshot(minutes, snap=window),
            "total": session_metrics.snapshot(snap=total),
        },
    }

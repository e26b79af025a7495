"""Agent sessions' figures: what the loop reports, and one read of them for ``stats``.

The loop (``agentjobs/agents/``) calls four functions; each adds to the metrics hashes
of ``metrics.py`` in one script call, so every worker process on every host adds
into the same numbers and the exporter serves them with the rest:

- :func:`started` when a session is created: ``sessions_started{agent}``;
- :func:`ended` when it reaches a final status: ``sessions{agent,status}``,
  ``session_steps``, ``session_tool_calls``, ``session_cost_usd`` and
  ``session_seconds`` (histograms per agent), ``session_ceiling_hits{agent,stop_reason}``;
- :func:`tool_done` after each tool call: ``tool_calls{tool,kind}`` (``kind`` as
  ``ToolOutcome.kind``: ok, invalid_input, error, timeout) and ``tool_seconds{tool}``;
- :func:`approval_waited` when an approval is decided: ``approval_wait_seconds{tool}``.

- :func:`reopened` when a dead letter's replay re-opens an ended session
  (``control.replay_dead_letter``): ``sessions_reopened{agent}``.

``agent`` is the agent the session started with (the first of its hand-off chain), so
``sessions_started + sessions_reopened - sessions`` per agent is the number still open.
Every ending counts: a session that failed, was re-opened by a replay and then completed
counts ``failed`` once and ``completed`` once. Each is counted once even when the loop
reports it twice (a redelivered step): a marker (``{p}:metrics:session:{id}:started``,
``...:ended`` for the first ending, ``...:ended:{k}`` and ``...:reopened:{k}`` after
the k-th re-open; 7 days) is set first, and only the writer that set it adds. ``k`` is
read from the record: the sum of its steps' ``replays`` (each re-open replays one step).
Like every metric, a write never raises: a lost one is logged.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from agentjobs.keys import key
from agentjobs.ops import metrics
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

#: How long the once-per-session markers live: longer than any redelivery delay.
MARKER_TTL_S = 7 * 86_400

#: The status values and ceiling names, for readers that want every row shown.
STATUSES = ("running", "waiting_approval", "completed", "stopped", "failed", "cancelled")
TOOL_KINDS = ("ok", "invalid_input", "error", "timeout")


def marker_key(session_id: str, event: str) -> str:
    return key("metrics", "session", session_id, event)


def _first_time(session_id: str | None, event: str, client: redis.Redis | None) -> bool:
    """True for the one writer that reports this session's ``event`` first."""
    if not session_id:
        return True
    try:
        r = client or state_redis()
        return bool(r.set(marker_key(session_id, event), "1", nx=True, ex=MARKER_TTL_S))
    except redis.RedisError as exc:
        log.warning("agentjobs session metrics: %s of %s lost: %s", event, session_id, exc)
        return False


def started(
    agent: str, *, session_id: str | None = None, client: redis.Redis | None = None
) -> None:
    """A session of ``agent`` was created (counted once per ``session_id`` when given)."""
    if not get_settings().metrics_enabled or not _first_time(session_id, "started", client):
        return
    u = metrics.Update()
    u.inc("sessions_started", (agent,))
    u.commit(client)


def entry_agent(record: dict[str, Any]) -> str:
    """The agent a session started with (the first link of its chain)."""
    chain = record.get("chain") or []
    if chain and isinstance(chain[0], dict) and chain[0].get("agent"):
        return str(chain[0]["agent"])
    return str(record.get("agent") or "unknown")


def reopens(record: dict[str, Any]) -> int:
    """How many times the session was re-opened: a replay re-opens it at one step and
    adds one to that step's ``replays`` (``control.replay_dead_letter``)."""
    return sum(int(e.get("replays") or 0) for e in record.get("steps") or () if isinstance(e, dict))


def reopened(record: dict[str, Any], *, client: redis.Redis | None = None) -> None:
    """An ended session was re-opened (``record`` as written by the re-open): it is open
    again, and its next ending counts too. Once per re-open."""
    k = reopens(record)
    if not get_settings().metrics_enabled or not k:
        return
    if not _first_time(record.get("session_id"), f"reopened:{k}", client):
        return
    u = metrics.Update()
    u.inc("sessions_reopened", (entry_agent(record),))
    u.commit(client)


def ended(record: dict[str, Any], *, client: redis.Redis | None = None) -> None:
    """A session reached a final status: its status, size, cost, duration and ceiling.
    Once per ending: the first, and again after each re-open (:func:`reopens`)."""
    if not get_settings().metrics_enabled:
        return
    k = reopens(record)
    if not _first_time(record.get("session_id"), f"ended:{k}" if k else "ended", client):
        return
    agent = (entry_agent(record),)
    u = metrics.Update()
    u.inc("sessions", (*agent, str(record.get("status") or "unknown")))
    u.observe("session_steps", agent, len(record.get("steps") or ()))
    u.observe("session_tool_calls", agent, len(record.get("tool_calls") or ()))
    u.observe("session_cost_usd", agent, float(record.get("cost_usd") or 0.0))
    created, end = record.get("created_at"), record.get("ended_at") or record.get("updated_at")
    if isinstance(created, (int, float)) and isinstance(end, (int, float)):
        u.observe("session_seconds", agent, max(0.0, end - created))
    reason = record.get("stop_reason")
    if reason:
        u.inc("session_ceiling_hits", (*agent, str(reason)))
    u.commit(client)


def tool_done(
    tool: str, kind: str, duration_s: float, *, client: redis.Redis | None = None
) -> None:
    """One tool call ran, with this outcome kind."""
    u = metrics.Update()
    u.inc("tool_calls", (tool, kind))
    u.observe("tool_seconds", (tool,), duration_s)
    u.commit(client)


def approval_waited(tool: str, seconds: float, *, client: redis.Redis | None = None) -> None:
    """A call of ``tool`` waited ``seconds`` for its approve or deny."""
    u = metrics.Update()
    u.observe("approval_wait_seconds", (tool,), seconds)
    u.commit(client)


# --- reading ------------------------------------------------------------------------


def _dist(snap: metrics.Snapshot, name: str, q: tuple[float, ...], **where: str) -> dict[str, Any]:
    count = snap.sum(name, **where)
    out: dict[str, Any] = {
        "count": int(count),
        "mean": round(snap.hist_sum(name, **where) / count, 6) if count else None,
    }
    for p in q:
        v = snap.quantile(name, p, **where)
        out[f"p{round(p * 100)}"] = None if v is None else round(v, 6)
    return out


def snapshot(
    minutes: int | None = None,
    *,
    agent: str | None = None,
    snap: metrics.Snapshot | None = None,
    client: redis.Redis | None = None,
) -> dict[str, Any]:
    """The sessions' figures as one JSON-able dict (for ``agentjobs stats``).

    Over the last ``minutes`` (all time when None), or over ``snap`` when given (a
    reader that already holds one); ``agent`` keeps one entry agent. Keys: ``started``,
    ``reopened``, ``ended`` (endings: a re-opened session's count again), ``open``
    (started plus reopened minus ended: running or waiting for approval, or lost with
    the store's retention), ``by_status``, ``ceiling_hits`` (by stop_reason),
    ``steps``, ``tool_calls`` and ``cost_usd`` per session (count, mean, p50, p95),
    ``duration_s`` (p50, p95), ``tools`` (per tool: calls by kind, errors, p50/p99 s),
    ``approval_wait_s`` (count, mean, p50, p95). Histogram quantiles are interpolated
    inside buckets, as Prometheus does.
    """
    if snap is None:
        snap = (
            metrics.read_total(client) if minutes is None else metrics.read_window(minutes, client)
        )
    w = {"agent": agent} if agent else {}
    started_n = int(snap.sum("sessions_started", **w))
    reopened_n = int(snap.sum("sessions_reopened", **w))
    by_status = {k: int(v) for k, v in sorted(snap.by("sessions", "status", **w).items())}
    ended_n = sum(by_status.values())
    tools: dict[str, Any] = {}
    for tool in sorted(snap.label_values("tool")):
        kinds = {k: int(v) for k, v in sorted(snap.by("tool_calls", "kind", tool=tool).items())}
        p50 = snap.quantile("tool_seconds", 0.5, tool=tool)
        p99 = snap.quantile("tool_seconds", 0.99, tool=tool)
        tools[tool] = {
            "calls": sum(kinds.values()),
            "by_kind": kinds,
            "errors": sum(n for k, n in kinds.items() if k != "ok"),
            "p50_s": None if p50 is None else round(p50, 4),
            "p99_s": None if p99 is None else round(p99, 4),
        }
    return {
        "window_min": minutes,
        "agent": agent,
        "started": started_n,
        "reopened": reopened_n,
        "ended": ended_n,
        "open": max(0, started_n + reopened_n - ended_n),
        "by_status": by_status,
        "ceiling_hits": {
            k: int(v)
            for k, v in sorted(snap.by("session_ceiling_hits", "stop_reason", **w).items())
        },
        "steps": _dist(snap, "session_steps", (0.5, 0.95), **w),
        "tool_calls": _dist(snap, "session_tool_calls", (0.5, 0.95), **w),
        "cost_usd": {
            **_dist(snap, "session_cost_usd", (0.5, 0.95), **w),
            "total": round(snap.hist_sum("session_cost_usd", **w), 6),
        },
        "duration_s": _dist(snap, "session_seconds", (0.5, 0.95), **w),
        "tools": tools,
        "approval_wait_s": _dist(snap, "approval_wait_seconds", (0.5, 0.95)),
    }

"""The session record: one JSON object per session id, the whole state of a session.

The loop (``loop.py``) writes it at every checkpoint through the store's version-checked
``update`` (``store.py``); nothing of a session lives in a worker's memory. Its shape::

    {
      "session_id", "agent" (the agent running now), "tenant", "status",
      "stop_reason" (max_steps | max_tool_calls | max_cost_usd | timeout |
                     max_tool_errors, or None), "input" (what start() was given),
      "output" (the final text, on_stop's fallback, or None), "error" (str or None),
      "created_at", "updated_at", "ended_at" (Unix seconds), "version" (the store's),
      "transcript": [Messages API messages, as sent at the next step],
      "steps": [{"n", "agent", "model", "task_id", "status": calling | done | failed,
                 "request": {"messages" (count), "tools" (names), "max_tokens"},
                 "response": {"content", "stop_reason"} or None,
                 "usage", "cost_usd", "reserved_usd" (held until the answer),
                 "latency_s", "attempts", "cached", "cache_saved_usd",
                 "started_at", "ended_at",
                 "discarded" (bool), "closed" (its turn's results are in), "error",
                 "replays" (times a replay of its dead letter re-opened the session at
                            this step; absent before the first), "replayed_from" (that
                            dead letter's id)}],
      "tool_calls": [{"step", "tool_use_id", "name", "input",
                      "status": pending | waiting_approval | running | done | denied
                                | cancelled,
                      "output", "is_error", "error", "kind" (ok | invalid_input |
                      error | timeout | denied), "content" (the tool_result's text),
                      "duration_s", "idempotency_key", "queue", "worker",
                      "approval": {"decision", "by", "at", "reason"} or None,
                      "handoff" (the agent handed to, or None), "payload",
                      "queued_at", "started_at", "ended_at"}],
      "chain": [{"agent", "from_agent", "step", "payload"}],  # first entry: the start
      "limits": {"max_steps", "max_tool_calls", "max_cost_usd", "timeout_s",
                 "max_tool_errors"},
      "cost_usd", "reserved_usd", "tool_errors",
      "cache_saved_usd" (what the prompt cache saved: the cost at the plain input
                         price less the real cost, summed over the steps),
      "usage": {"input_tokens", "output_tokens", "cache_creation_input_tokens",
                "cache_read_input_tokens"},
      "turn" (the last step admitted, 0 before the first),
      "next_step" (the step to enqueue once its turn closed, or None),
      "max_tokens" (the next step's output room when a step was cut inside a tool_use),
      "resumes", "resumed_at", "resumed_by" (``control.resume``: how many times, when
                 and by whom the session's due work was sent again; absent before the
                 first)
    }

A step's entry is written when the step is admitted (its estimated cost reserved in
``reserved_usd``) and completed with the model's answer; a tool call's entry when the
answer asking for it is checkpointed, and completed with its result. ``discarded``
marks an answer cut by ``max_tokens`` inside a ``tool_use`` block: it is paid and
recorded, but not put into the transcript (the next step asks again with more room).
A replay of a failed step's dead letter (``control.replay_dead_letter``) re-opens the
session: ``status`` running, ``error`` and ``ended_at`` None, that step ``calling``
again with its estimate held in ``reserved_usd``, its ``replays`` counted.
"""

from __future__ import annotations

import time
from typing import Any, TypedDict

from agentjobs.agents.store import FINAL, Record

#: The usage fields summed over a session's steps.
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
)
#: Tool-call statuses that hold the tool's result (or an operator's refusal).
RESOLVED = frozenset({"done", "denied", "cancelled"})


class SessionResult(TypedDict):
    """What ``Session.wait`` returns (ARCHITECTURE.md, "Agent sessions"): ``steps`` the
    model steps made (or in flight), ``tool_calls`` the calls the model asked for,
    ``error`` why a session failed."""

    session_id: str
    agent: str
    status: str
    stop_reason: str | None
    output: Any
    error: str | None
    steps: int
    tool_calls: int
    cost_usd: float
    usage: dict[str, int]
    created_at: float
    ended_at: float | None


def new_record(
    session_id: str,
    agent: str,
    input: Any,
    *,
    tenant: str | None,
    limits: dict[str, Any],
    now: float | None = None,
) -> Record:
    """A new session's record, before the store gives it its version."""
    t = time.time() if now is None else now
    return {
        "session_id": session_id,
        "agent": agent,
        "tenant": tenant,
        "status": "running",
        "stop_reason": None,
        "input": input,
        "output": None,
        "error": None,
        "created_at": t,
        "updated_at": t,
        "ended_at": None,
        "transcript": [{"role": "user", "content": input}],
        "steps": [],
        "tool_calls": [],
        "chain": [{"agent": agent, "from_agent": None, "step": 0, "payload": None}],
        "limits": dict(limits),
        "cost_usd": 0.0,
        "reserved_usd": 0.0,
        "cache_saved_usd": 0.0,
        "tool_errors": 0,
        "usage": dict.fromkeys(USAGE_FIELDS, 0),
        "turn": 0,
        "next_step": 1,
        "max_tokens": None,
    }


def is_final(record: Record) -> bool:
    return record.get("status") in FINAL


def step_entry(record: Record, n: int) -> dict[str, Any] | None:
    """Step ``n``'s entry, or None."""
    for entry in record["steps"]:
        if entry["n"] == n:
            return entry
    return None


def calls_of(record: Record, n: int) -> list[dict[str, Any]]:
    """The tool calls step ``n`` asked for, in the order of its tool_use blocks."""
    return [c for c in record["tool_calls"] if c["step"] == n]


def tool_call(record: Record, n: int, tool_use_id: str) -> dict[str, Any] | None:
    for c in record["tool_calls"]:
        if c["step"] == n and c["tool_use_id"] == tool_use_id:
            return c
    return None


def add_usage(record: Record, usage: dict[str, Any]) -> None:
    total = record["usage"]
    for name in USAGE_FIELDS:
        total[name] = int(total.get(name, 0)) + int(usage.get(name) or 0)


def end(record: Record, status: str, *, now: float | None = None) -> None:
    """Make the record final: no step or tool call starts after this (the calls not
    started are cancelled)."""
    t = time.time() if now is None else now
    record["status"] = status
    record["ended_at"] = t
    record["next_step"] = None
    record["reserved_usd"] = 0.0
    for c in record["tool_calls"]:
        # A call already running finishes, and its result is still recorded.
        if c["status"] not in RESOLVED and c["status"] != "running":
            c["status"] = "cancelled"
            c["ended_at"] = t


def result(record: Record) -> SessionResult:
    """The SessionResult of a record."""
    return SessionResult(
        session_id=record["session_id"],
        agent=record["agent"],
        status=record["status"],
        stop_reason=record.get("stop_reason"),
        output=record.get("output"),
        error=record.get("error"),
        # The same counts as the store's summary (``agentjobs sessions list``).
        steps=len(record.get("steps") or ()),
        tool_calls=len(record.get("tool_calls") or ()),
        cost_usd=round(float(record.get("cost_usd") or 0.0), 10),
        usage=dict(record.get("usage") or {}),
        created_at=record["created_at"],
        ended_at=record.get("ended_at"),
    )

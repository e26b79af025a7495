"""Operating a session from outside the loop: approve, deny, cancel, its result.

A tool with ``requires_approval=True`` is not enqueued when the model asks for it: its
call waits in the record (``waiting_approval``, the session too) and no worker thread
waits with it. ``approve`` enqueues it; ``deny`` answers it with an ``is_error``
tool_result ("denied by the operator: <reason>"), which the model sees at the next
step, and the loop goes on. ``cancel`` ends the session: a step or tool call already
running finishes (its answer or result is kept in the record), nothing after it runs.
``resume`` sends again whatever the record says is due (a message lost with a broker
or a host): duplicates are harmless, every task does only what is still to do.
These run in any process (the CLI, a web app): they need the session store and the
broker, not the agents' or tools' modules.
"""

from __future__ import annotations

import time
from typing import Any

from agentjobs.agents import ceilings, checkpoint, dispatch, hooks, record, turn
from agentjobs.agents.record import SessionResult
from agentjobs.agents.store import Record
from agentjobs.agents.stores import session_store
from agentjobs.errors import SessionStateError


def result(rec: Record) -> SessionResult:
    """The SessionResult of a record."""
    return record.result(rec)


def _waiting(rec: Record, tool_use_id: str | None) -> list[dict[str, Any]]:
    """The calls an approval or denial applies to; SessionStateError when none waits."""
    sid = rec["session_id"]
    if record.is_final(rec):
        raise SessionStateError(f"session {sid} is {rec['status']}: nothing to approve or deny")
    waiting = [c for c in rec["tool_calls"] if c["status"] == "waiting_approval"]
    if tool_use_id is not None:
        waiting = [c for c in waiting if c["tool_use_id"] == tool_use_id]
        if not waiting:
            raise SessionStateError(
                f"session {sid}: tool call {tool_use_id} is not waiting for approval"
            )
    if not waiting:
        raise SessionStateError(
            f"session {sid} is {rec['status']}: no tool call waits for approval"
        )
    return waiting


def _decide(
    session_id: str, tool_use_id: str | None, decision: str, by: str | None, reason: str | None
) -> tuple[Record, list[dict[str, Any]]]:
    decided: list[dict[str, Any]] = []

    def change(rec: Record) -> Record | None:
        decided.clear()
        calls = _waiting(rec, tool_use_id)
        if ceilings.timed_out(rec):
            return checkpoint.stop(rec, "timeout")
        now = time.time()
        for c in calls:
            waited = max(0.0, now - float(c.get("queued_at") or now))
            c["approval"] = {"decision": decision, "by": by, "at": now, "reason": reason}
            if decision == "approved":
                c["status"] = "pending"
                c["queued_at"] = now
            else:
                message = "denied by the operator" + (f": {reason}" if reason else "")
                turn.resolve(
                    rec,
                    c,
                    {"is_error": True, "error": message, "kind": "denied", "content": message},
                    status="denied",
                )
            decided.append({**c, "waited_s": waited})
        for n in sorted({c["step"] for c in calls}):
            turn.settle(rec, n)
        return rec

    rec, _ = checkpoint.write(session_id, change)
    for c in decided:
        hooks.approval_waited(c["name"], c["waited_s"])
    return rec, decided


def approve(session_id: str, tool_use_id: str | None = None, *, by: str | None = None) -> Record:
    """Approve the call ``tool_use_id`` (default: every call waiting) and enqueue it.

    SessionNotFound, or SessionStateError when the call (or the session) does not wait
    for approval. A session past its ``timeout_s`` is stopped instead.
    """
    rec, decided = _decide(session_id, tool_use_id, "approved", by, None)
    for c in decided:
        if not record.is_final(rec):
            turn.send_calls(rec, c["step"], c["tool_use_id"])
    return rec


def deny(
    session_id: str,
    tool_use_id: str | None = None,
    *,
    reason: str | None = None,
    by: str | None = None,
) -> Record:
    """Deny the call ``tool_use_id`` (default: every call waiting): the model gets
    ``denied by the operator: <reason>`` as an error result and goes on."""
    rec, _ = _decide(session_id, tool_use_id, "denied", by, reason)
    turn.send_due(rec)
    return rec


def cancel(session_id: str, *, reason: str | None = None) -> Record:
    """End the session ``cancelled``; SessionStateError when it has already ended."""

    def change(rec: Record) -> Record | None:
        if record.is_final(rec):
            raise SessionStateError(f"session {session_id} is already {rec['status']}")
        rec["error"] = f"cancelled: {reason}" if reason else "cancelled"
        record.end(rec, "cancelled")
        return rec

    rec, _ = checkpoint.write(session_id, change)
    return rec


def resume(session_id: str) -> Record:
    """Enqueue again what the session waits for: its step in flight or due, its tool
    calls not yet answered. For a message lost outside the broker's redelivery (a Redis
    broker's pop window, a purged queue); harmless when nothing was lost.
    SessionStateError when the session has ended."""
    rec = session_store().load(session_id)
    if record.is_final(rec):
        raise SessionStateError(f"session {session_id} is {rec['status']}: nothing to resume")
    n = int(rec.get("turn") or 0)
    entry = record.step_entry(rec, n)
    if entry is not None and entry["status"] == "calling":
        dispatch.send_step(session_id, n, entry["agent"], entry["model"])
    if n:
        turn.send_calls(rec, n, running=True)
    turn.send_due(rec)
    return rec

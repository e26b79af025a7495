"""Operating a session from outside the loop: approve, deny, cancel, its result.

A tool with ``requires_approval=True`` is not enqueued when the model asks for it: its
call waits in the record (``waiting_approval``, the session too) and no worker thread
waits with it. ``approve`` enqueues it; ``deny`` answers it with an ``is_error``
tool_result ("denied by the operator: <reason>"), which the model sees at the next
step, and the loop goes on. ``cancel`` ends the session: a step or tool call already
running finishes (its answer or result is kept in the record), nothing after it runs.
``resume`` sends again whatever the record says is due (a message lost with a broker
or a host): duplicates are harmless, every task does only what is still to do (and a
model step's claim on ``{session}:{n}`` lets one copy call, the others take its answer);
the workers' sweep (``sweep.py``) calls it for sessions that stopped progressing.
``replay_dead_letter`` replays a dead letter: a model step's re-opens its failed session
and sends the step again; any other is a plain ``complete`` (``deadletter.replay_one``).
These run in any process (the CLI, a web app): they need the session store and the
broker, not the agents' or tools' modules.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentjobs import catalog
from agentjobs.agents import ceilings, checkpoint, dispatch, hooks, record, turn
from agentjobs.agents.record import SessionResult
from agentjobs.agents.store import Record
from agentjobs.agents.stores import session_store
from agentjobs.errors import SessionStateError
from agentjobs.reliability import deadletter

#: A model step's idempotency key, ``{session_id}:{n}`` (a tool call's has a third part).
STEP_KEY = re.compile(r"^(?P<session_id>[^:]+):(?P<n>[0-9]+)$")


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


def resume(session_id: str, *, by: str | None = None) -> Record:
    """Enqueue again what the session waits for: its step in flight or due, its tool
    calls not yet answered. For a message lost outside the broker's redelivery (a Redis
    broker's pop window, a purged queue); harmless when nothing was lost.

    The record notes it (``resumes``, ``resumed_at``, ``resumed_by``) before anything
    is sent, so every message sent is younger than the record's ``updated_at`` (the
    sweep's test of a queued message relies on it). SessionStateError when the session
    has ended.
    """

    def change(rec: Record) -> Record | None:
        if record.is_final(rec):
            raise SessionStateError(f"session {session_id} is {rec['status']}: nothing to resume")
        rec["resumes"] = int(rec.get("resumes") or 0) + 1
        rec["resumed_at"] = time.time()
        rec["resumed_by"] = by
        return rec

    rec, _ = checkpoint.write(session_id, change)
    n = int(rec.get("turn") or 0)
    entry = record.step_entry(rec, n)
    if entry is not None and entry["status"] == "calling":
        dispatch.send_step(session_id, n, entry["agent"], entry["model"])
    if n:
        turn.send_calls(rec, n, running=True)
    turn.send_due(rec)
    return rec


# -- replaying a dead letter ---------------------------------------------------------


@dataclass
class Replayed:
    """What ``replay_dead_letter`` sent: ``id`` the task id; for a model step its
    ``session_id`` and ``step`` (``result`` None: follow the session); for a plain
    ``complete`` the AsyncResult ``submit`` returned (``session_id`` None)."""

    id: str
    session_id: str | None = None
    step: int | None = None
    result: Any = None


def dead_step(dl: deadletter.DeadLetter) -> tuple[str, int] | None:
    """The (session id, step) a dead letter is the model step of, or None: its key is
    ``{session}:{n}`` and that session exists with a step ``n``."""
    m = STEP_KEY.match(dl.idempotency_key)
    if m is None:
        return None
    sid, n = m["session_id"], int(m["n"])
    rec = session_store().get(sid)
    if rec is None or record.step_entry(rec, n) is None:
        return None
    return sid, n


def _reopen(session_id: str, n: int, dl_id: str) -> Any:
    def change(rec: Record) -> Record | None:
        entry = record.step_entry(rec, n)
        if rec["status"] != "failed" or entry is None or entry["status"] != "failed":
            raise SessionStateError(
                f"session {session_id} is {rec['status']} (step {n} "
                f"{entry['status'] if entry else 'unknown'}): only a session failed at "
                "this step is re-opened by its replay"
            )
        if rec.get("turn") != n:
            raise SessionStateError(
                f"session {session_id} failed after step {n}: its replay would not go on"
            )
        held = float(entry.get("reserved_usd") or 0.0)
        entry.update(status="calling", error=None, ended_at=None, started_at=time.time())
        entry["replays"] = int(entry.get("replays") or 0) + 1
        entry["replayed_from"] = dl_id
        rec["status"], rec["error"], rec["ended_at"] = "running", None, None
        rec["reserved_usd"] = held  # the step's estimate, held again until its answer
        return rec

    return change


def _send_step(rec: Record, n: int, task_id: str) -> None:
    from agentjobs.worker.app import publishing_app

    entry = record.step_entry(rec, n) or {}
    agent, model = str(entry.get("agent") or rec["agent"]), str(entry.get("model"))
    kwargs = {"session_id": rec["session_id"], "n": n, "agent": agent, "model": model}
    publishing_app().send_task(
        dispatch.STEP_TASK,
        kwargs=kwargs,
        queue=catalog.resolve(model).queue,
        task_id=task_id,
        shadow=dispatch.step_name(agent, rec["session_id"], n),
    )


def replay_dead_letter(dl_id: str, submit: Callable[..., Any] | None = None) -> Replayed:
    """Replay a dead letter (``agentjobs dlq replay`` and the console both call this).

    A model step's (key ``{session}:{n}``): the session, failed at that step, is
    re-opened (``running``, the step ``calling`` again, its estimate reserved), the
    key's stored dead letter is forgotten (so the step's claim calls again), and the
    step is sent on its family's queue; the loop goes on from there, and the worker
    that gets an answer removes the dead letter. Any other dead letter goes through
    ``deadletter.replay_one`` with ``submit`` (default ``complete.apply_async``).

    KeyError when there is no such dead letter; SessionStateError when the session is
    not failed at that step (already replayed, cancelled, gone on).
    """
    dl = deadletter.get(dl_id)
    if dl is None:
        raise KeyError(dl_id)
    step = dead_step(dl)
    if step is None:
        if submit is None:
            from agentjobs.worker.tasks import complete

            submit = complete.apply_async
        res = deadletter.replay_one(dl_id, submit)
        return Replayed(id=str(res.id), result=res)
    sid, n = step
    reopened, _ = checkpoint.write(sid, _reopen(sid, n, dl_id))  # refuses before the dl changes
    hooks.reopened(reopened)  # open again: its next ending counts too

    def send(*, kwargs: dict[str, Any], task_id: str) -> str:
        # replay_one has forgotten the key's dead-letter outcome: the step may call.
        _send_step(session_store().load(sid), n, task_id)
        return task_id

    task_id = deadletter.replay_one(dl_id, send)
    return Replayed(id=str(task_id), session_id=sid, step=n)

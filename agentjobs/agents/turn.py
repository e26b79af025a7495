"""A turn's tool calls: one task each, in parallel; the last result closes the turn.

When a step's answer asks for tools, ``open_turn`` records one tool call per
``tool_use`` block (in the answer's order): a hand-off or an unknown tool is answered
at once, a tool behind approval waits (``waiting_approval``, no task), the others are
enqueued on their tool's queue. Each ``tool_call`` task (``run_tool``) claims the
call's idempotency key ``{session}:{n}:{tool_use_id}`` (at most one copy runs it; a
copy that finds the key done takes the stored outcome instead of running the tool
again), runs ``Tool.run`` and checkpoints the outcome. The write that resolves the
turn's last call closes it (``close_turn``): the ``tool_result`` blocks go into the
transcript in the answer's order, the tool-error ceiling is checked, a hand-off
switches the agent, and the next step is enqueued.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Ignore, Reject, Retry

from agentjobs.agents import ceilings, checkpoint, dispatch, handoff, hooks, record
from agentjobs.agents.agent import AGENTS, Agent, get_agent
from agentjobs.agents.record import RESOLVED
from agentjobs.agents.store import Record
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import ToolOutcome, UnknownToolError
from agentjobs.errors import AgentJobsError
from agentjobs.reliability import idempotency, recovery
from agentjobs.telemetry import genai

log = logging.getLogger(__name__)

#: Outcome kinds that count toward ``max_tool_errors`` (a denial does not).
ERROR_KINDS = frozenset({"invalid_input", "error", "timeout"})


def _new_call(session_id: str, n: int, block: dict[str, Any], now: float) -> dict[str, Any]:
    return {
        "step": n,
        "tool_use_id": block["id"],
        "name": block["name"],
        "input": block.get("input"),
        "status": "pending",
        "output": None,
        "is_error": False,
        "error": None,
        "kind": None,
        "content": None,
        "duration_s": None,
        "idempotency_key": f"{session_id}:{n}:{block['id']}",
        "approval": None,
        "queue": None,
        "worker": None,
        "handoff": None,
        "payload": None,
        "queued_at": now,
        "started_at": None,
        "ended_at": None,
    }


def resolve(
    rec: Record, call: dict[str, Any], outcome: dict[str, Any], status: str = "done"
) -> None:
    """Put an outcome (``ToolOutcome.to_dict()`` plus ``content``) into a call."""
    call["status"] = status
    call["output"] = outcome.get("output")
    call["is_error"] = bool(outcome.get("is_error"))
    call["error"] = outcome.get("error")
    call["kind"] = outcome.get("kind")
    call["duration_s"] = outcome.get("duration_s")
    call["content"] = outcome.get("content")
    call["ended_at"] = time.time()
    if call["is_error"] and call["kind"] in ERROR_KINDS:
        rec["tool_errors"] = int(rec.get("tool_errors") or 0) + 1


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"output": None, "is_error": True, "error": message, "kind": kind, "content": message}


def open_turn(rec: Record, n: int, uses: list[dict[str, Any]], agent: Agent) -> None:
    """Record the tool calls step ``n``'s answer asks for (or stop at max_tool_calls)."""
    reason = ceilings.before_tools(rec, len(uses))
    if reason is not None:
        checkpoint.stop(rec, reason)
        return
    now = time.time()
    handed_off = False
    for block in uses:
        call = _new_call(rec["session_id"], n, block, now)
        rec["tool_calls"].append(call)
        target = agent.handoff(block["name"])
        if target is not None:
            payload, problem = target.validate(block.get("input"))
            if problem is None and handed_off:
                problem = "only one hand-off per turn: this one was not made"
            if problem is not None:
                resolve(rec, call, _error("invalid_input", problem))
                continue
            handed_off = True
            call["handoff"], call["payload"] = target.agent, payload
            text = handoff.result_content(agent.name, target.agent, payload or {})
            resolve(rec, call, {"output": payload, "kind": "ok", "content": text})
            continue
        try:
            tool = agent.tool(block["name"])
        except UnknownToolError as exc:
            resolve(rec, call, _error("invalid_input", str(exc)))
            continue
        if tool is None:
            resolve(
                rec, call, _error("invalid_input", f"{agent.name} has no tool {block['name']!r}")
            )
            continue
        call["queue"] = tool.queue
        if tool.requires_approval:
            call["status"] = "waiting_approval"
    settle(rec, n)


def settle(rec: Record, n: int) -> None:
    """After a change to step ``n``'s calls: the session's status, or the turn closed."""
    if record.is_final(rec):
        return
    calls = record.calls_of(rec, n)
    waiting = any(c["status"] == "waiting_approval" for c in calls)
    rec["status"] = "waiting_approval" if waiting else "running"
    if all(c["status"] in RESOLVED for c in calls):
        close_turn(rec, n)


def close_turn(rec: Record, n: int) -> None:
    """Every call of step ``n`` has its result: the tool_result turn, the tool-error
    ceiling, a hand-off, and step ``n + 1`` due."""
    entry = record.step_entry(rec, n)
    if entry is None or entry.get("closed"):
        return
    entry["closed"] = True
    results = []
    for c in record.calls_of(rec, n):
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": c["tool_use_id"],
            "content": c["content"] or "(no output)",
        }
        if c["is_error"]:
            block["is_error"] = True
        results.append(block)
    rec["transcript"].append({"role": "user", "content": results})
    reason = ceilings.after_tool_errors(rec)
    if reason is not None:
        checkpoint.stop(rec, reason)
        return
    for c in record.calls_of(rec, n):
        if c["handoff"] and c["status"] == "done":
            rec["chain"].append(
                {
                    "agent": c["handoff"],
                    "from_agent": rec["agent"],
                    "step": n,
                    "payload": c["payload"],
                }
            )
            rec["agent"] = c["handoff"]
            break
    rec["status"] = "running"
    rec["next_step"] = n + 1


def model_of(rec: Record) -> str:
    """The model of the agent running now: its definition's, else its last step's."""
    agent = AGENTS.get(rec["agent"])
    if agent is not None:
        return agent.model
    for entry in reversed(rec["steps"]):
        if entry["agent"] == rec["agent"]:
            return str(entry["model"])
    return str(rec["steps"][-1]["model"])


def send_due(rec: Record) -> None:
    """Enqueue the step the record says is due (none, when it is final or admitted)."""
    n = rec.get("next_step")
    if record.is_final(rec) or n is None or record.step_entry(rec, n) is not None:
        return
    dispatch.send_step(rec["session_id"], n, rec["agent"], model_of(rec))


def send_calls(
    rec: Record, n: int, tool_use_id: str | None = None, *, running: bool = False
) -> None:
    """Enqueue step ``n``'s calls (or the one ``tool_use_id``) that wait for a worker
    (and, with ``running``, those marked running, whose task may have been lost)."""
    if record.is_final(rec):
        return
    statuses = ("pending", "running") if running else ("pending",)
    for c in record.calls_of(rec, n):
        if tool_use_id is not None and c["tool_use_id"] != tool_use_id:
            continue
        if c["status"] in statuses and c["queue"]:
            dispatch.send_tool(rec["session_id"], n, c["tool_use_id"], c["name"], c["queue"])


# -- the tool_call task ---------------------------------------------------------------


def _run(rec: Record, call: dict[str, Any], key: str) -> dict[str, Any]:
    """Run the call's tool (the step's agent's); never raises for the tool's failures."""
    entry = record.step_entry(rec, call["step"])
    try:
        agent = get_agent(entry["agent"] if entry else rec["agent"])
        tool = agent.tool(call["name"])
        if tool is None:
            raise UnknownToolError(f"{agent.name} has no tool {call['name']!r}")
    except AgentJobsError as exc:
        return _error("error", str(exc)) | {"duration_s": 0.0}
    outcome: ToolOutcome = tool.run(call["input"] or {}, idempotency_key=key)
    return outcome.to_dict() | {"content": outcome.content()}


def _mark_running(n: int, tool_use_id: str, worker: str) -> Any:
    def change(rec: Record) -> Record | None:
        c = record.tool_call(rec, n, tool_use_id)
        if c is None or record.is_final(rec) or c["status"] not in ("pending", "running"):
            return None
        c["status"], c["started_at"], c["worker"] = "running", time.time(), worker
        return rec

    return change


def _checkpoint(n: int, tool_use_id: str, outcome: dict[str, Any]) -> Any:
    def change(rec: Record) -> Record | None:
        c = record.tool_call(rec, n, tool_use_id)
        if c is None or c["status"] in RESOLVED:
            return None  # another copy wrote it, or the session ended and cancelled it
        resolve(rec, c, outcome)  # kept even when the session ended while it ran
        settle(rec, n)
        return rec

    return change


def run_tool(task: Any, session_id: str, n: int, tool_use_id: str) -> dict[str, Any]:
    """One tool call (the body of ``agentjobs.tool_call``): its stored outcome, or the
    tool run once under the key's lease, then checkpointed."""
    try:
        return _run_tool(task, session_id, n, tool_use_id)
    except (Retry, Reject, Ignore):
        raise
    except Exception as exc:
        if checkpoint.outage(exc):  # the store or broker is down: the broker keeps the call
            raise checkpoint.requeue(exc) from exc
        # A bug, or a store that refuses the record: the session says so, never hangs.
        log.exception("tool call %s of session %s failed", tool_use_id, session_id)
        error = f"tool call {tool_use_id} of step {n}: {type(exc).__name__}: {exc}"
        try:
            checkpoint.write(
                session_id, lambda r: None if record.is_final(r) else checkpoint.fail(r, error)
            )
        except Exception as again:
            if checkpoint.outage(again):
                raise checkpoint.requeue(again) from again
            raise
        return {"session_id": session_id, "step": n, "tool_use_id": tool_use_id, "done": False}


def _run_tool(task: Any, session_id: str, n: int, tool_use_id: str) -> dict[str, Any]:
    rec = session_store().get(session_id)
    call = None if rec is None else record.tool_call(rec, n, tool_use_id)
    if rec is None or call is None:
        log.warning("tool call %s of session %s step %s: no such call", tool_use_id, session_id, n)
        return {"session_id": session_id, "step": n, "tool_use_id": tool_use_id, "done": False}
    done = {"session_id": session_id, "step": n, "tool_use_id": tool_use_id, "done": True}
    if record.is_final(rec) or call["status"] == "waiting_approval":
        return done | {"done": False, "status": rec["status"]}
    if call["status"] in RESOLVED:  # a redelivery: the result is in; the step may be due
        send_due(rec)
        return done
    if ceilings.timed_out(rec):
        checkpoint.write(
            session_id, lambda r: None if record.is_final(r) else checkpoint.stop(r, "timeout")
        )
        return done | {"done": False, "status": "stopped"}
    info = task.request
    key = call["idempotency_key"]
    claim = idempotency.claim(
        key, idempotency.new_token(str(info.hostname), str(info.id)), wait_s=0, task_id=str(info.id)
    )
    if claim.done:  # the tool ran; its checkpoint was lost (a crash): do not run it again
        outcome = (claim.outcome or {})["result"]
    elif not claim.claimed:  # another live copy runs it: look again once it may be done
        raise recovery.step_aside(task, claim)
    else:
        try:
            checkpoint.write(session_id, _mark_running(n, tool_use_id, str(info.hostname)))
            name, attributes = genai.tool_span(call["name"], tool_use_id, session_id, n)
            with idempotency.held(claim), hooks.span(name, **attributes):
                outcome = _run(rec, call, key)
            outcome = idempotency.succeeded(claim, outcome)
        except BaseException:
            idempotency.release(key, claim.token)
            raise
        hooks.tool_done(
            call["name"], str(outcome.get("kind")), float(outcome.get("duration_s") or 0)
        )
    rec, _ = checkpoint.write(session_id, _checkpoint(n, tool_use_id, outcome))
    send_due(rec)
    return done | {"kind": outcome.get("kind"), "status": rec["status"]}

"""The loop: one model step per task, tool calls as tasks of their own, the record as
the only state.

::

    agent.start(input)
      │ create the record (status running, next_step 1), enqueue step 1
      ▼
    agentjobs.agent_step(session, n)          on claude.{family}
      │ 1 admit: ceilings (max_steps, timeout, max_cost_usd with the step's estimated
      │   cost reserved in the record); passing one -> stopped, on_stop's output
      │ 2 the call: pipeline.WORKER_STEPS, as complete (claim on key "{session}:{n}",
      │   limiter, budget, cost, retries, dead letters, metrics); dead-lettered -> failed
      │ 3 checkpoint the answer (version-checked): the step, usage and cost, the
      │   transcript; then by stop_reason:
      │     end_turn, stop_sequence, max_tokens (text)  -> completed, output = text
      │     pause_turn                                   -> step n+1 resends the turn
      │     max_tokens inside a tool_use                 -> discarded; step n+1 with
      │                                                     twice the room (failed at
      │                                                     the model's maximum)
      │     tool_use -> max_tool_calls check, then one tool call per tool_use block
      ▼
    agentjobs.tool_call(session, n, id) x k   on the tool's queue (agentjobs.tools)
      │ claim "{session}:{n}:{id}", Tool.run, checkpoint the result (is_error for an
      │ invalid input or the tool's failure); approval tools wait with no task until
      │ control.approve enqueues them (or control.deny answers them)
      │ the write of the turn's last result closes it: tool_results into the
      │ transcript, max_tool_errors check, a hand-off switches the agent
      ▼
    agentjobs.agent_step(session, n+1) ...

Nothing waits in a worker thread for another task. Every task reads the record first
and does only what is still to do, so a redelivered or duplicated message is harmless:
a step whose answer is checkpointed re-sends only its follow-ups; one whose answer was
stored under its key but not checkpointed (a crash between the two) takes the stored
answer from the claim, with no second call. A step ends in an answer or a dead letter
(the session ``failed``), never lost: the pipeline's retries are Celery retries of this
same task, and a state store that is down gives the message back to the broker.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery.exceptions import Ignore, Reject, Retry

from agentjobs import catalog, pipeline
from agentjobs.agents import ceilings, checkpoint, hooks, record, turn
from agentjobs.agents.agent import Agent, get_agent
from agentjobs.agents.store import Record, SessionNotFound
from agentjobs.agents.stores import session_store
from agentjobs.errors import AgentJobsError, DeadLetteredError
from agentjobs.messages.request import parse_request
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cost_usd
from agentjobs.spend import budget
from agentjobs.telemetry import genai, logs

log = logging.getLogger(__name__)

#: How many of a step's texts the log redaction is told (a long transcript's first ones).
_REDACT_TEXTS = 512


def _summary(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {
        "messages": len(kwargs["messages"]),
        "tools": [t["name"] for t in kwargs.get("tools") or ()],
        "max_tokens": kwargs["max_tokens"],
    }


def _cache_saved(result: dict[str, Any]) -> float:
    """What the prompt cache saved on this answer: its cost with every input token at
    the plain input price, less its real cost (negative when it only wrote the cache)."""
    u = Usage.model_validate(result["usage"])
    plain = Usage(
        input_tokens=u.input_tokens + u.cache_creation_input_tokens + u.cache_read_input_tokens,
        output_tokens=u.output_tokens,
        server_tool_use=u.server_tool_use,
    )
    try:
        return round(cost_usd(result["model"], plain) - float(result["cost_usd"]), 10)
    except AgentJobsError:  # a model the price table does not know: nothing to say
        return 0.0


def _admit(n: int, agent: Agent, kwargs: dict[str, Any], estimate: float, task_id: str) -> Any:
    def change(rec: Record) -> Record | None:
        if record.is_final(rec) or rec.get("next_step") != n or record.step_entry(rec, n):
            return None  # ended, not due, or admitted by another copy
        reason = ceilings.before_step(rec, n, estimate)
        if reason is not None:
            return checkpoint.stop(rec, reason)
        rec["steps"].append(
            {
                "n": n,
                "agent": agent.name,
                "model": agent.model,
                "task_id": task_id,
                "status": "calling",
                "request": _summary(kwargs),
                "response": None,
                "usage": None,
                "cost_usd": None,
                "reserved_usd": estimate,
                "latency_s": None,
                "started_at": time.time(),
                "ended_at": None,
                "discarded": False,
                "closed": False,
                "error": None,
            }
        )
        rec["reserved_usd"] = float(rec.get("reserved_usd") or 0.0) + estimate
        rec["turn"] = n
        rec["next_step"] = None
        return rec

    return change


def _answered(n: int, result: dict[str, Any], agent: Agent) -> Any:
    def change(rec: Record) -> Record | None:
        entry = record.step_entry(rec, n)
        if entry is None or entry["status"] == "done":
            return None  # another copy checkpointed it
        entry.update(
            status="done",
            response={"content": result["content"], "stop_reason": result["stop_reason"]},
            usage=result["usage"],
            cost_usd=result["cost_usd"],
            latency_s=round(float(result.get("latency_ms") or 0.0) / 1000.0, 6),
            attempts=result.get("attempts"),
            cached=result.get("cached"),
            cache_saved_usd=_cache_saved(result),
            ended_at=time.time(),
        )
        rec["cost_usd"] = float(rec["cost_usd"]) + float(result["cost_usd"])
        saved = float(rec.get("cache_saved_usd") or 0.0) + entry["cache_saved_usd"]
        rec["cache_saved_usd"] = round(saved, 10)
        held = float(entry.get("reserved_usd") or 0.0)
        rec["reserved_usd"] = max(0.0, float(rec.get("reserved_usd") or 0.0) - held)
        entry["reserved_usd"] = 0.0
        record.add_usage(rec, result["usage"])
        if record.is_final(rec):  # cancelled while it ran: the answer is paid, kept
            return rec
        _decide(rec, n, entry, result, agent)
        return rec

    return change


def _decide(
    rec: Record, n: int, entry: dict[str, Any], result: dict[str, Any], agent: Agent
) -> None:
    """What step ``n``'s answer leads to (the record is written after)."""
    content = result["content"]
    reason = result["stop_reason"]
    uses = [b for b in content if b.get("type") == "tool_use"]
    room = int(entry["request"]["max_tokens"])
    if reason == "max_tokens" and uses:
        # The answer ended inside a tool call: its input is incomplete, and running it
        # would act on half an input. Ask again (the next step) with twice the room.
        top = catalog.resolve(agent.model).max_output_tokens
        entry["discarded"] = True
        if room >= top:
            checkpoint.fail(
                rec,
                f"step {n} was cut at max_tokens ({room}, the model's maximum) inside a "
                "tool_use block",
            )
            return
        rec["max_tokens"] = min(2 * room, top)
        rec["next_step"] = n + 1
        return
    rec["max_tokens"] = None
    rec["transcript"].append({"role": "assistant", "content": content})
    if reason == "pause_turn":  # a long server-tool turn: send it back to go on
        rec["next_step"] = n + 1
    elif uses:
        turn.open_turn(rec, n, uses, agent)
    elif reason in ("end_turn", "stop_sequence", "max_tokens"):
        checkpoint.complete(rec, result.get("text") or "")
    else:  # refusal, model_context_window_exceeded, or anything newer
        checkpoint.fail(rec, f"step {n}: the model stopped with {reason!r}")


def _follow(rec: Record, n: int) -> None:
    """Step ``n``'s follow-ups, sent again by a redelivered copy: harmless twice."""
    if rec.get("turn") != n:
        return
    turn.send_calls(rec, n)
    turn.send_due(rec)


def _fail(session_id: str, n: int, error: str) -> Record:
    def change(rec: Record) -> Record | None:
        if record.is_final(rec):
            return None
        entry = record.step_entry(rec, n)
        if entry is not None and entry["status"] == "calling":
            entry.update(status="failed", ended_at=time.time(), error=error)
        return checkpoint.fail(rec, error)

    rec, _ = checkpoint.write(session_id, change)
    return rec


def run_step(task: Any, session_id: str, n: int) -> dict[str, Any]:
    """One model step of a session (the body of ``agentjobs.agent_step``)."""
    out: dict[str, Any] = {"session_id": session_id, "step": n}
    try:
        return out | _run_step(task, session_id, n)
    except (Retry, Reject, Ignore):
        raise
    except SessionNotFound:
        log.warning("step %s of session %s: no such session", n, session_id)
        return out | {"status": None}
    except Exception as exc:
        if checkpoint.outage(exc):  # the store or broker is down: the broker keeps the step
            raise checkpoint.requeue(exc) from exc
        # A problem of this session (an agent not loaded here, a bad request) or a bug:
        # the session says so, and never hangs in running.
        if isinstance(exc, AgentJobsError):
            error = str(exc)
            log.warning("step %s of session %s failed: %s", n, session_id, exc)
        else:
            error = f"step {n}: {type(exc).__name__}: {exc}"
            log.exception("step %s of session %s failed", n, session_id)
        try:
            return out | {"status": _fail(session_id, n, error)["status"]}
        except Exception as again:
            if checkpoint.outage(again):
                raise checkpoint.requeue(again) from again
            raise


def _run_step(task: Any, session_id: str, n: int) -> dict[str, Any]:
    rec = session_store().load(session_id)
    if record.is_final(rec):
        return {"status": rec["status"]}
    entry = record.step_entry(rec, n)
    if entry is not None and entry["status"] == "done":  # a redelivery after the checkpoint
        _follow(rec, n)
        return {"status": rec["status"]}
    if entry is None and rec.get("next_step") != n:
        return {"status": rec["status"]}  # a stale message: this step is not due
    agent = get_agent(entry["agent"] if entry else rec["agent"])
    max_tokens = entry["request"]["max_tokens"] if entry else rec.get("max_tokens")
    kwargs = agent.request(
        rec["transcript"],  # unchanged until the step answers, so a retry resends it
        session_id=session_id,
        n=n,
        tenant=rec.get("tenant"),
        max_tokens=max_tokens,
    )
    if entry is None:
        estimate = budget.estimate_usd(parse_request(kwargs))
        task_id = str(getattr(task.request, "id", "") or "")
        rec, _ = checkpoint.write(session_id, _admit(n, agent, kwargs, estimate, task_id))
        entry = record.step_entry(rec, n)
        if entry is None or record.is_final(rec):
            return {"status": rec["status"], "stop_reason": rec.get("stop_reason")}
        if entry["status"] == "done":
            _follow(rec, n)
            return {"status": rec["status"]}
    # The step's task arguments are ids: the conversation it sends (question, system
    # prompt, tool results, answers) comes from the record, so it is bound here for the
    # log redaction, as a complete task's arguments are at its start.
    secrets = logs.bind(logs.texts_of(kwargs, limit=_REDACT_TEXTS))
    try:
        return _send(task, session_id, n, agent, kwargs)
    finally:
        logs.unbind(secrets)


def _send(
    task: Any, session_id: str, n: int, agent: Agent, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Step ``n``'s call through the task path, then its answer checkpointed."""
    try:
        name, attributes = genai.agent_span(agent.name, session_id, n)
        with hooks.span(name, **attributes):
            result = pipeline.execute(task, kwargs)
    except DeadLetteredError as exc:
        return {"status": _fail(session_id, n, f"step {n}: {exc}")["status"]}
    rec, _ = checkpoint.write(session_id, _answered(n, result, agent))
    _follow(rec, n)
    return {
        "status": rec["status"],
        "model": result.get("model"),
        "stop_reason": result.get("stop_reason"),
        "usage": result.get("usage"),
        "cost_usd": result.get("cost_usd"),
        "cached": result.get("cached"),
        "limiter_wait_ms": result.get("limiter_wait_ms", 0.0),
    }

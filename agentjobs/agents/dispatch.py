"""Enqueueing the loop's tasks by name: a model step on its family's queue, a tool call
on its tool's queue.

By name (``send_task``), so the modules that start sessions and answer approvals do
not import the tasks. Each message is named for its session in Flower and the worker's
log (Celery's ``shadow``): ``agent:{agent}:{session_id}:{n}`` for a step,
``tool:{name}:{session_id}:{n}`` for a tool call. Sending a step or a tool call twice
is harmless: each task reads the record first and does nothing for work already done.
"""

from __future__ import annotations

from typing import Any

from agentjobs import catalog

#: The Celery task names (``tasks.py`` registers them).
STEP_TASK = "agentjobs.agent_step"
TOOL_TASK = "agentjobs.tool_call"


def step_name(agent: str, session_id: str, n: int) -> str:
    return f"agent:{agent}:{session_id}:{n}"


def tool_name(name: str, session_id: str, n: int) -> str:
    return f"tool:{name}:{session_id}:{n}"


def _app() -> Any:
    # The project's own app once agentjobs.install ran on it, else agentjobs' own.
    from agentjobs.worker.app import publishing_app

    return publishing_app()


def send_step(session_id: str, n: int, agent: str, model: str) -> None:
    """Enqueue model step ``n`` of a session on the queue of its model's family."""
    kwargs = {"session_id": session_id, "n": n, "agent": agent, "model": model}
    _app().send_task(
        STEP_TASK,
        kwargs=kwargs,
        queue=catalog.resolve(model).queue,
        shadow=step_name(agent, session_id, n),
    )


def send_tool(session_id: str, n: int, tool_use_id: str, name: str, queue: str) -> None:
    """Enqueue one tool call of step ``n`` on its tool's queue."""
    kwargs = {"session_id": session_id, "n": n, "tool_use_id": tool_use_id, "name": name}
    _app().send_task(TOOL_TASK, kwargs=kwargs, queue=queue, shadow=tool_name(name, session_id, n))

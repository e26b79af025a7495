"""The loop's Celery tasks: ``agentjobs.agent_step`` and ``agentjobs.tool_call``.

The worker app loads this module by name (its ``include``), so every worker registers
both; the modules that define agents and tools are the user's, loaded with ``-I``.
Late acks and ``reject_on_worker_lost``: a worker killed in a task leaves its message
to be delivered again, and the task, reading the record first, does only what is
still to do (``loop.py``). No Celery retry budget: the pipeline's policy is the only
one (as for ``complete``). A worker that is ready starts the session sweep
(``sweep.py``: running sessions whose work was lost are resumed).
"""

from __future__ import annotations

from typing import Any

from celery import Task, signals

from agentjobs.agents import dispatch, loop, retention, sweep, turn
from agentjobs.ops import served
from agentjobs.worker.app import app


class SessionTask(Task):
    """A task named for its session in Flower and the worker's log (its shadow name),
    on every send: the first, and each retry of the pipeline's policy."""

    typing = False

    def shadow_name(self, args: Any, kwargs: Any, options: Any) -> str | None:
        kwargs = kwargs or {}
        if self.name == dispatch.STEP_TASK:
            return dispatch.step_name(
                str(kwargs.get("agent")), str(kwargs.get("session_id")), int(kwargs.get("n", 0))
            )
        return dispatch.tool_name(
            str(kwargs.get("name")), str(kwargs.get("session_id")), int(kwargs.get("n", 0))
        )


_OPTIONS: dict[str, Any] = {
    "bind": True,
    "base": SessionTask,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "max_retries": None,
    "autoretry_for": (),
}


@app.task(name=dispatch.STEP_TASK, **_OPTIONS)
def agent_step(
    self: SessionTask, *, session_id: str, n: int, agent: str = "", model: str = ""
) -> dict[str, Any]:
    """Model step ``n`` of a session (``agent`` and ``model`` name it in Flower and the
    metrics; the record decides)."""
    return loop.run_step(self, session_id, int(n))


@app.task(name=dispatch.TOOL_TASK, **_OPTIONS)
def tool_call(
    self: SessionTask, *, session_id: str, n: int, tool_use_id: str, name: str = ""
) -> dict[str, Any]:
    """One tool call of step ``n`` of a session."""
    return turn.run_tool(self, session_id, int(n), tool_use_id)


@signals.worker_ready.connect
def _start_sweep(sender: Any = None, **_: Any) -> None:
    # Here, not in the worker's own handlers: the worker layer does not import agents.
    # Only on a worker of agentjobs' queues: not a project's worker of its own ones.
    controller = getattr(sender, "controller", None)
    if served.serves_agentjobs(controller):
        sweep.start(controller)
        retention.start(controller)

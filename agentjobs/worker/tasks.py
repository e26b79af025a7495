"""The tasks: ``agentjobs.complete``.

``ClaudeTask.apply_async`` validates the request in the caller and picks the queue
from the model family, so bad input never reaches a queue and nobody routes by hand;
after the publish it records the task in the submit ledger (``ledger.py``).
The worker-side flow is in ``pipeline.py``.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from celery.local import Proxy

from agentjobs import catalog, pipeline
from agentjobs.call import Call
from agentjobs.errors import AgentJobsError, RequestError
from agentjobs.messages.request import AUTO_MODEL, CompleteRequest
from agentjobs.reliability import ledger
from agentjobs.spend.routing import queue_for_auto
from agentjobs.worker.app import app, publishing_app

TASK_NAME = "agentjobs.complete"


def route_task(
    name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **_: Any
) -> dict[str, str] | None:
    """Celery router: ``send_task("agentjobs.complete", kwargs=...)`` lands on the right queue."""
    if name != TASK_NAME or not isinstance(kwargs, dict):
        return None
    model = kwargs.get("model", "haiku")
    if model == AUTO_MODEL:  # the worker routes again, and records why
        return queue_for_auto(kwargs)
    try:
        return {"queue": catalog.resolve(model).queue}
    except AgentJobsError:
        return None  # the worker validates again and dead-letters the request


def prepare(kwargs: dict[str, Any], options: dict[str, Any]) -> CompleteRequest:
    """Run the submit path (pipeline.SUBMIT_STEPS): validate, resolve ``model="auto"``,
    check budgets, fix the queue in ``options``.

    Raises RequestError (bad input) or BudgetExceededError (a daily cap is reached).
    """
    call = Call(kwargs, options=options)
    pipeline.run(pipeline.SUBMIT_STEPS, call, lambda c: None)
    return call.request


class ClaudeTask(Task):
    """Base of ``complete``: validation and routing happen in the caller."""

    typing = False  # kwargs are checked by pydantic, with clearer errors

    def apply_async(
        self,
        args: tuple[Any, ...] | list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        **options: Any,
    ) -> Any:
        if args:
            raise RequestError(f"{TASK_NAME} takes keyword arguments only")
        req = prepare(dict(kwargs or {}), options)
        task_kwargs = req.task_kwargs()
        result = super().apply_async(args=(), kwargs=task_kwargs, **options)
        # Published: note it in the submit ledger (after, so a failed publish leaves no
        # entry; best effort, a state store down only logs). Retries pass here too.
        if ledger.enabled(self.app):
            ledger.record(str(result.id), task_kwargs, str(options["queue"]))
        return result


def _complete(self: ClaudeTask, **kwargs: Any) -> dict[str, Any]:
    """Call Claude once (or return the stored result); returns a ClaudeResult dict."""
    return pipeline.execute(self, kwargs)


app.task(
    bind=True,
    base=ClaudeTask,
    name=TASK_NAME,
    acks_late=True,
    reject_on_worker_lost=True,
    # No Celery retry budget: agentjobs' policy (retry.py) is the only one. Celery's
    # default of 3 would end a task deferred a fourth time as MaxRetriesExceededError,
    # neither succeeded nor dead-lettered. A task_annotations setting can still change
    # this attribute, so recovery.requeue also passes its own limit to every retry.
    max_retries=None,
    # Given here, so that a task_annotations autoretry_for cannot wrap the task in
    # Celery's own retry loop (options of the decorator win over annotations there).
    autoretry_for=(),
)(_complete)

#: ``agentjobs.complete`` on the app agentjobs publishes through: the project's own once
#: ``agentjobs.install(app)`` ran on it (the task is defined there too: hosts.py), else
#: agentjobs' own. Resolved at each use, as Celery's shared_task resolves its task.
complete: ClaudeTask = Proxy(lambda: publishing_app().tasks[TASK_NAME])

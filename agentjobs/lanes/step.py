"""The pipeline step of the batch lane: hand the request over, free the worker thread.

A batch-lane task does not wait hours for its answer in a worker thread, nor retry
itself past the visibility timeout: it records its request in the state store
(records.enqueue, one atomic script) and raises Celery's ``Ignore``, so the task ends
with no state written (it stays ``STARTED``) and its message is acked. The poller later
writes the result (or the dead letter's failure) into the result backend under the
task's id, so the caller's ``AsyncResult`` goes to ``SUCCESS`` as for a synchronous
call. A worker killed before the record is written has not acked: the message comes
back. A redelivered or resubmitted task of the same key joins the waiting request
instead of queueing a second one, or returns the key's outcome once there is one.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

from celery.exceptions import Ignore

from agentjobs.call import Call, idempotency_key
from agentjobs.errors import AgentJobsError, BudgetDeferredError, BudgetExceededError
from agentjobs.lanes import records
from agentjobs.reliability import idempotency, ledger, recovery
from agentjobs.spend import budget

#: How long a waiting request's budget hold lasts if nothing releases it: a batch ends
#: within 24 h, its answers are written soon after.
HOLD_S = 26 * 3600.0


def lane_of(call: Call) -> str:
    """The call's lane: the request's, else its tenant's or queue's default, else sync."""
    req = call.request
    if req.lane is not None:
        return req.lane
    defaults = call.settings.lane_defaults
    if req.tenant is not None and f"tenant:{req.tenant}" in defaults:
        return defaults[f"tenant:{req.tenant}"]
    return defaults.get(f"queue:{call.queue}", "sync")


def _deadline(task: Any) -> float | None:
    """The task's ``expires`` (the caller's deadline) as epoch seconds, if it has one."""
    expires = getattr(getattr(task, "request", None), "expires", None)
    if not expires:
        return None
    try:
        return datetime.fromisoformat(str(expires)).timestamp()
    except ValueError:
        return None


def to_batch(call: Call, next: Any) -> Any:
    """A batch-lane call waits in the state store for a Message Batch; others go on."""
    try:
        batch = lane_of(call) == "batch" and call.routed
    except AgentJobsError:  # an invalid request: the synchronous path dead-letters it
        return next(call)
    if not batch:
        return next(call)
    task_id = call.task_id
    key = idempotency_key(call.kwargs, task_id)
    try:
        # Held while the request waits (an upper bound at the full price), given back
        # when its answer's real cost is recorded.
        req, held = budget.reserve(call.request, lease_s=HOLD_S)
    except (BudgetExceededError, BudgetDeferredError):
        # Over a cap: the synchronous path rejects, downgrades or defers it, and
        # dead-letters or retries it by the policy, under the idempotency claim.
        return next(call)
    if req is not call.request:
        call.request = req  # downgraded
    params = call.params
    rec = {
        "cid": records.custom_id(key),
        "k": key,
        "kwargs": call.kwargs,
        "params": params,
        "group": call.group,
        "family": call.family,
        "queue": call.queue,
        "tenant": req.tenant,
        "at": time.time(),
        "deadline": _deadline(call.task),
        "n": 0,  # batches it was sent in
        "errors": 0,
        "hold": None if held is None else [held.day, held.member, held.tenant, held.nano],
    }
    state = records.enqueue(rec, task_id)
    if state <= 0:  # joined a waiting request, or answered: that one holds the budget
        budget.release(held)
    if state < 0:  # the key has an outcome: the task returns it as a sync copy would
        return recovery.stored_outcome(idempotency.outcome(key) or {})
    # The lane's records hold the request from here: the submit ledger must not take a
    # task that ended without a result for a lost one and send it again.
    if call.task is not None and ledger.enabled(call.task.app):
        with contextlib.suppress(Exception):  # a re-sent copy only joins the request
            ledger.remove([task_id])
    raise Ignore()

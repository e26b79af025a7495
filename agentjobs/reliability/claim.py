"""The pipeline's first step: the idempotency claim, and what follows a failure.

At most one Claude call in flight per idempotency key, and its outcome kept: a key
that finished before returns its stored outcome (a redelivered or resubmitted task,
no call); a key another live copy holds is looked at again later (a step aside, not
an attempt); otherwise this copy holds the lease, renewed by a heartbeat, while the
rest of the path runs. A failure leaving the path goes to ``recovery.failed``: a retry
through the broker or a dead letter.
"""

from __future__ import annotations

import time
from typing import Any

from celery.exceptions import Retry

from agentjobs.call import Call
from agentjobs.reliability import idempotency, recovery


def claim(call: Call, next: Any) -> dict[str, Any]:
    """Claim the call's key; run the rest of the path under its lease; keep the outcome."""
    task = call.task
    c = recovery.claim(task, call.kwargs)  # the caller's idempotency_key, else the task id
    if c.done:
        return recovery.stored_outcome(c.outcome or {})
    if not c.claimed:  # another live copy is calling: look again later
        raise recovery.step_aside(task, c)
    call.key = c.key
    call.attempts = c.prior_attempts + 1
    started_at = time.time()
    try:
        with idempotency.held(c):  # a heartbeat renews the lease while we call
            result = next(call)
    except Retry:  # a step below asked for a retry itself: let another copy claim
        idempotency.release(c.key, c.token)
        raise
    except Exception as exc:
        raise recovery.failed(task, call.kwargs, c, exc, started_at) from exc
    return recovery.succeeded(c, result.model_dump(mode="json"))

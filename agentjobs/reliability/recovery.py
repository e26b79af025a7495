"""After a failed attempt: record it, then retry through the broker or dead-letter.

``failed`` is the pipeline's one exception handler. It classifies the failure
(``retry.classify``), reads the key's earlier attempts from the idempotency record,
asks the queue's policy (``retry.decide``), and either

- records the attempt, frees the lease and returns Celery's ``Retry`` from ``requeue``
  (countdown from the policy, or the server's ``retry-after`` for a 429; Celery's own
  ``max_retries`` never applies), or
- writes the dead letter, stores "dead-lettered as <id>" as the key's outcome (so
  copies and resubmissions do not call again), pauses the group after a spend-limit
  429, and returns a ``DeadLetteredError`` naming the record: Celery marks the task
  failed with it, which Flower shows.

The pipeline raises what it returns. When the state store is down (past its retries)
nothing can be recorded: every path hands the message back to the broker instead
(``store_down``), so it is redelivered, never lost.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from typing import Any

import redis
import tenacity
from celery import Task
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from agentjobs import catalog
from agentjobs.call import idempotency_key
from agentjobs.errors import AgentJobsError, DeadLetteredError
from agentjobs.limiter import pause
from agentjobs.reliability import deadletter, idempotency, retry
from agentjobs.settings import get_settings

log = logging.getLogger(__name__)

#: The ``max_retries`` passed to Celery's ``Task.retry``: out of reach (see ``requeue``).
NO_CELERY_LIMIT = sys.maxsize


def family_of(kwargs: dict[str, Any], task: Task) -> str:
    """The model family of a task, even when its kwargs are invalid (for the policy)."""
    model = kwargs.get("model", "haiku")
    try:
        return catalog.resolve(model).family if isinstance(model, str) else "haiku"
    except AgentJobsError:
        pass
    queue = (task.request.delivery_info or {}).get("routing_key") or ""
    family = str(queue).removeprefix("claude.")
    return family if family in catalog.FAMILIES else "haiku"


def group_of(kwargs: dict[str, Any]) -> str | None:
    model = kwargs.get("model", "haiku")
    try:
        return catalog.resolve(model).group if isinstance(model, str) else None
    except AgentJobsError:
        return None


def store_down(exc: redis.RedisError, what: str) -> Reject:
    """The state store is down past ``store.retrying``'s retries: give the message back
    to the broker, which redelivers it, rather than lose it. ``what`` says what could not
    be done (a key claimed, a result stored, a retry or dead letter recorded)."""
    return Reject(f"state store unreachable, {what}, message requeued: {exc}", requeue=True)


def claim(task: Task, kwargs: dict[str, Any]) -> idempotency.Claim:
    """Claim the task's idempotency key; a state store down past its retries requeues."""
    info = task.request
    key = idempotency_key(kwargs, str(info.id))
    try:
        token = idempotency.new_token(str(info.hostname), str(info.id))
        return idempotency.claim(key, token, task_id=str(info.id))
    except redis.RedisError as exc:
        raise store_down(exc, "key not claimed") from exc


def succeeded(claim: idempotency.Claim, result: dict[str, Any]) -> dict[str, Any]:
    """Store the result under the key; the key's result (another copy's if it won)."""
    try:
        return idempotency.succeeded(claim, result)
    except redis.RedisError as exc:
        # Not failed, not done: the redelivered message calls again (the answer is lost).
        raise store_down(exc, "result not stored") from exc


def failed(
    task: Task,
    kwargs: dict[str, Any],
    claim: idempotency.Claim,
    exc: BaseException,
    started_at: float,
    *,
    now: Callable[[], float] = time.time,
    wait: tenacity.wait.wait_base | None = None,
) -> BaseException:
    """Retry or dead-letter after ``exc``; the exception for the pipeline to raise."""
    try:
        return _failed(task, kwargs, claim, exc, started_at, now=now, wait=wait)
    except redis.RedisError as store_exc:
        # Neither retried nor dead-lettered: hand the message back rather than lose it.
        return store_down(store_exc, f"{exc!r} neither retried nor dead-lettered")


def _failed(
    task: Task,
    kwargs: dict[str, Any],
    claim: idempotency.Claim,
    exc: BaseException,
    started_at: float,
    *,
    now: Callable[[], float],
    wait: tenacity.wait.wait_base | None,
) -> BaseException:
    s = get_settings()
    info = task.request
    key = claim.key
    failure = retry.classify(exc)
    family = family_of(kwargs, task)
    earlier = idempotency.attempts(key)
    t = now()
    history = retry.History(
        errors=sum(1 for a in earlier if a.get("counted", True)),
        first_at=earlier[0]["started_at"] if earlier else started_at,
    )
    decision = retry.decide(
        failure,
        retry.policy_for(family),
        history,
        t,
        max_countdown_s=s.visibility_timeout_s / 2,
        wait=wait,
    )
    attempt = deadletter.Attempt(
        n=len(earlier) + 1,
        started_at=started_at,
        at=t,
        error_class=failure.error_class,
        kind=failure.kind,
        message=failure.message,
        status=failure.status,
        counted=decision.counted,
        action="retry" if decision.retry else "dead_letter",
        worker=str(info.hostname),
        task_id=str(info.id),
    )
    if decision.retry:
        idempotency.add_attempt(key, attempt.model_dump(mode="json"))
        idempotency.release(key, claim.token)
        log.info(
            "task %s key %s: %s (%s), retry in %.2fs",
            info.id,
            key,
            failure.error_class,
            failure.kind,
            decision.countdown,
            exc_info=failure.kind == "state_store",  # which step met the outage
        )
        return requeue(task, decision.countdown)
    return _dead_letter(task, kwargs, claim, failure, decision, [*earlier, attempt], family, t)


def _dead_letter(
    task: Task,
    kwargs: dict[str, Any],
    claim: idempotency.Claim,
    failure: retry.Failure,
    decision: retry.Decision,
    attempts: list[Any],
    family: str,
    t: float,
) -> BaseException:
    s = get_settings()
    info = task.request
    key = claim.key
    delivery = info.delivery_info or {}
    group = group_of(kwargs)
    record = deadletter.DeadLetter(
        id=deadletter.dead_letter_id(key),
        created_at=t,
        request=dict(kwargs),
        error_class=failure.error_class,
        error_kind=failure.kind,
        message=failure.message,
        status=failure.status,
        reason=decision.reason,
        attempts=[deadletter.Attempt.model_validate(a) for a in attempts],
        queue=str(delivery.get("routing_key") or catalog.queue_for(family)),
        worker=str(info.hostname),
        task_id=str(info.id),
        idempotency_key=key,
        group=group,
    )
    dl_id = deadletter.add(record, t)
    if decision.pause and failure.status == 429 and group is not None:
        # Only a real spend-limit answer pauses; refusals during the pause do not extend it.
        pause.pause_spend(group, f"spend limit reached at {time.ctime(t)}", s.spend_pause_s)
    message = (
        f"dead-lettered as {dl_id} after {len(attempts)} attempt(s): "
        f"{failure.error_class}: {failure.message} ({decision.reason}); "
        f"see `agentjobs dlq show {dl_id}`"
    )
    outcome = {"dead_letter": dl_id, "message": message}
    stored = idempotency.finish(claim, outcome, s.dlq_max_age_s)
    if "dead_letter" not in stored:
        # This copy's lease had lapsed and another copy succeeded meanwhile: its answer
        # wins; requeue, and the redelivered message returns it.
        deadletter.remove(dl_id)
        return Reject("the key succeeded in another copy", True)
    log.warning("task %s key %s %s", info.id, key, message)
    return DeadLetteredError(message, dl_id)


def step_aside(task: Task, claim: idempotency.Claim) -> BaseException:
    """Another live copy holds the key past our wait: retry once its lease could end.

    Not an attempt: nothing was called. The countdown stays below the visibility timeout.
    """
    s = get_settings()
    countdown = min(
        max(1.0, claim.lease_left_ms / 1000.0) + random.uniform(0, 1),
        s.visibility_timeout_s / 2,
    )
    log.info(
        "task %s: key %s busy in another copy, look again in %.1fs",
        task.request.id,
        claim.key,
        countdown,
    )
    return requeue(task, countdown)


def requeue(task: Task, countdown: float) -> BaseException:
    """Send the task again in ``countdown`` seconds: Celery's ``Retry`` to raise, or a
    ``Reject`` that gives the message back when the new one cannot be published.

    Celery's own retry limit never applies: ``retry(max_retries=None)`` means "the
    task's ``max_retries``" (3 by default, or whatever a ``task_annotations`` setting
    put there), not "no limit", and every limiter deferral, 429 wait and step-aside is
    a Celery retry. Past that limit ``retry()`` raises MaxRetriesExceededError: the task
    fails without a dead letter. The policy in ``retry.decide`` (attempts, total time)
    is the only retry budget, so the limit passed here is one no count reaches.
    """
    try:
        return task.retry(countdown=countdown, max_retries=NO_CELERY_LIMIT, throw=False)
    except (Reject, OperationalError) as exc:
        # retry() turns any failure to publish (broker down, or a check of
        # ClaudeTask.apply_async, such as a daily budget reached since the submit) into
        # Reject(requeue=False), which would drop the message: requeue it instead; the
        # worker that gets it again retries or dead-letters it by the policy.
        why = exc.reason if isinstance(exc, Reject) else exc
        log.warning("task %s: cannot schedule a retry, message requeued: %r", task.request.id, why)
        return Reject(f"cannot schedule a retry, message requeued: {why!r}", True)


def stored_outcome(outcome: dict[str, Any]) -> dict[str, Any]:
    """The result of a finished key, or raise the DeadLetteredError that ended it."""
    if "dead_letter" in outcome:
        raise DeadLetteredError(outcome["message"], outcome["dead_letter"])
    return outcome["result"]

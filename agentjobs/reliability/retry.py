"""Failure classification and retry policies: what to do after a failed attempt.

Every failure is classified once, by ``classify``, into a ``Failure`` whose ``kind``
indexes ``ACTIONS``, the one table from failure to action:

=============================  ==============================  =========================
failure kind                   from                            action
=============================  ==============================  =========================
rate_limited                   429, our limiter's long wait,   wait ``retry-after``; not
                               a budget deferral               an error attempt
overloaded, server_error,      529, 500-504, dropped           backoff: full jitter,
connection, timeout,           connection, read timeout,       bounded attempts and
state_store, transient         Redis down                      total time
bad_request, auth, billing,    400-404, 413, 422, invalid      dead_letter at once
permission, not_found,         kwargs, budget rejection, an    (one call)
too_large, validation,         unexpected exception
budget, permanent, unknown
spend_limit                    429 enforced_spend_limit_...    pause: dead-letter, and
                                                               pause the group
=============================  ==============================  =========================

``decide`` turns a failure, the queue's ``Policy`` and the key's history into a
``Decision``: retry after ``countdown`` seconds, or dead-letter with a reason. It is
pure (the wait strategy is injectable), so tests never sleep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import anthropic
import redis
import tenacity

from agentjobs.api.errors import (
    ERROR_TYPE_STATUS,
    SPEND_LIMIT_CODE,
    error_code,
    error_message,
    retry_after,
)
from agentjobs.errors import (
    BudgetExceededError,
    PermanentError,
    RateLimitedError,
    RequestError,
    SpendLimitError,
    TransientError,
)
from agentjobs.settings import Policy, Settings, get_settings


class Action(StrEnum):
    WAIT = "wait"  # retry after the server's retry-after; does not use up the error budget
    BACKOFF = "backoff"  # retry with exponential backoff and full jitter, bounded
    DEAD_LETTER = "dead_letter"  # no retry
    PAUSE = "pause"  # no retry, and pause the rate-limit group (spend cap)


#: failure kind -> action: the retry table (ARCHITECTURE.md "Retries").
ACTIONS: dict[str, Action] = {
    "rate_limited": Action.WAIT,
    "overloaded": Action.BACKOFF,
    "server_error": Action.BACKOFF,
    "connection": Action.BACKOFF,
    "timeout": Action.BACKOFF,
    "state_store": Action.BACKOFF,
    "transient": Action.BACKOFF,
    "bad_request": Action.DEAD_LETTER,
    "auth": Action.DEAD_LETTER,
    "billing": Action.DEAD_LETTER,
    "permission": Action.DEAD_LETTER,
    "not_found": Action.DEAD_LETTER,
    "too_large": Action.DEAD_LETTER,
    "validation": Action.DEAD_LETTER,
    "budget": Action.DEAD_LETTER,
    "permanent": Action.DEAD_LETTER,
    "unknown": Action.DEAD_LETTER,
    "spend_limit": Action.PAUSE,
}

#: HTTP status -> failure kind, for API errors.
_STATUS_KINDS: dict[int, str] = {
    400: "bad_request",
    401: "auth",
    402: "billing",
    403: "permission",
    404: "not_found",
    408: "timeout",
    409: "server_error",  # a conflict on the server's side: worth another try
    413: "too_large",
    422: "bad_request",
    429: "rate_limited",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "timeout",
    529: "overloaded",
}


@dataclass(frozen=True)
class Failure:
    """One failed attempt, classified."""

    kind: str
    error_class: str
    message: str
    status: int | None = None
    retry_after_s: float | None = None

    @property
    def action(self) -> Action:
        return ACTIONS[self.kind]


def classify(exc: BaseException) -> Failure:
    """The failure kind of any exception a task can meet (unknown ones are not retried)."""
    name = type(exc).__name__
    message = error_message(exc)
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        if 200 <= status < 300:
            # An ``error`` event in a stream the API had answered 200: the error's type
            # says which status it stands for (``overloaded_error`` is a 529).
            status = ERROR_TYPE_STATUS.get(str(getattr(exc, "type", None) or ""), 500)
        if status == 429 and error_code(exc) == SPEND_LIMIT_CODE:
            return Failure("spend_limit", name, message, status)
        kind = _STATUS_KINDS.get(status)
        if kind is None:
            kind = "server_error" if status >= 500 else "bad_request"
        return Failure(kind, name, message, status, retry_after(exc.response.headers))
    if isinstance(exc, anthropic.APITimeoutError):
        return Failure("timeout", name, message)
    if isinstance(exc, anthropic.APIConnectionError):
        return Failure("connection", name, message)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return Failure("server_error", name, message, exc.status_code)
    if isinstance(exc, RateLimitedError):
        return Failure("rate_limited", name, message, None, exc.retry_after_s)
    if isinstance(exc, SpendLimitError):
        return Failure("spend_limit", name, message)
    if isinstance(exc, RequestError):
        return Failure("validation", name, message)
    if isinstance(exc, BudgetExceededError):
        return Failure("budget", name, message)
    if isinstance(exc, PermanentError):
        return Failure("permanent", name, message)
    if isinstance(exc, TransientError):
        return Failure("transient", name, message)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return Failure("state_store", name, message)
    return Failure("unknown", name, message)


def policy_for(family: str, settings: Settings | None = None) -> Policy:
    """The policy of a model family's queue: the global settings, then its overrides."""
    s = settings or get_settings()
    base: dict[str, Any] = {
        "max_attempts": s.retry_max_attempts,
        "backoff_base_s": s.retry_backoff_base_s,
        "backoff_max_s": s.retry_backoff_max_s,
        "max_total_s": s.retry_max_total_s,
        "rate_limit_max_total_s": s.retry_rate_limit_max_total_s,
    }
    return Policy(**{**base, **s.retry_policies.get(family, {})})


@dataclass(frozen=True)
class Decision:
    """What to do after a failure: ``retry`` after ``countdown``, or dead-letter."""

    retry: bool
    countdown: float = 0.0
    counted: bool = True  # does this failure use up one of the policy's attempts?
    reason: str = ""
    pause: bool = False  # spend cap: pause the rate-limit group


@dataclass
class History:
    """What a key went through before this failure (from the idempotency record)."""

    errors: int = 0  # counted failures before this one
    first_at: float | None = None  # epoch seconds of the first attempt
    extra: dict[str, Any] = field(default_factory=dict)


def backoff(
    policy: Policy, retry_number: int, wait: tenacity.wait.wait_base | None = None
) -> float:
    """Countdown before the ``retry_number``-th retry (1-based), full jitter by default."""
    strategy = wait or tenacity.wait_random_exponential(
        multiplier=policy.backoff_base_s, max=policy.backoff_max_s
    )
    state = tenacity.RetryCallState(None, None, (), {})  # type: ignore[arg-type]
    state.attempt_number = retry_number
    return float(strategy(state))


def decide(
    failure: Failure,
    policy: Policy,
    history: History,
    now: float,
    *,
    max_countdown_s: float,
    wait: tenacity.wait.wait_base | None = None,
) -> Decision:
    """Retry or dead-letter; ``max_countdown_s`` keeps countdowns below the visibility timeout."""
    action = failure.action
    if action is Action.PAUSE:
        return Decision(False, reason="spend limit reached: an operator must act", pause=True)
    if action is Action.DEAD_LETTER:
        return Decision(False, reason=f"permanent failure ({failure.kind}): not retried")
    elapsed = 0.0 if history.first_at is None else max(0.0, now - history.first_at)
    if action is Action.WAIT:
        countdown = failure.retry_after_s
        if countdown is None:  # no retry-after: back off as for an error, at least a second
            countdown = max(1.0, backoff(policy, 1, wait))
        countdown = min(countdown, max_countdown_s)
        if elapsed + countdown > policy.rate_limit_max_total_s:
            return Decision(
                False,
                counted=False,
                reason=f"rate limited for {elapsed:.0f}s, over the policy's "
                f"{policy.rate_limit_max_total_s:.0f}s",
            )
        return Decision(True, countdown, counted=False, reason="rate limited: retry-after")
    errors = history.errors + 1  # this failure counts
    if errors >= policy.max_attempts:
        return Decision(False, reason=f"gave up after {errors} failed attempts (policy max)")
    countdown = min(backoff(policy, errors, wait), max_countdown_s)
    if elapsed + countdown > policy.max_total_s:
        return Decision(
            False,
            reason=f"gave up after {elapsed:.0f}s and {errors} failed attempts "
            f"(policy max_total_s {policy.max_total_s:.0f})",
        )
    return Decision(True, countdown, reason=f"{failure.kind}: backoff retry {errors}")

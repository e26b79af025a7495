"""A task retried many times still ends as a success or a dead letter, nothing else.

Every limiter deferral, 429 wait, budget deferral and step-aside goes back through the
broker as a Celery retry. agentjobs' policy (retry.py: attempts, total time) is the only
retry budget: not Celery's ``max_retries`` (3 by default, or what ``task_annotations``
sets), and not a check of ``ClaudeTask.apply_async`` that the retry's publish meets.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs import complete
from agentjobs.api import client
from agentjobs.contrib.drill import Drill
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import DeadLetteredError
from agentjobs.limiter.admission import get_limiter
from agentjobs.messages.result import Usage
from agentjobs.reliability import deadletter, idempotency
from agentjobs.settings import reset_settings
from agentjobs.simulator import SimConfig, run_in_thread
from agentjobs.spend import cost
from agentjobs.worker.app import app
from agentjobs.worker.tasks import TASK_NAME


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()
    client.reset_client()


def configure(env: pytest.MonkeyPatch, **values: Any) -> None:
    for name, value in values.items():
        env.setenv(f"AGENTJOBS_{name.upper()}", str(value))
    reset_settings()


def spend(usd: float) -> None:
    """Record spend as a finished call does (what other workers' calls would add)."""
    cost.record(
        model="claude-haiku-4-5", queue="claude.haiku", tenant=None, usage=Usage(), cost=usd
    )


@pytest.mark.slow
def test_a_backlog_of_limiter_deferrals_every_task_succeeds() -> None:
    """60 tasks at once against 600 RPM with a 2 s visibility timeout.

    A deferral's countdown is at most a quarter of the visibility timeout (0.5 s here,
    75 s with the 300 s default), so the last of 60 tasks at 10 a second (6 s) goes
    back to the broker about as many times as a task waiting ten minutes does at the
    defaults: far more than Celery's default limit of 3.

    The simulator's time scale shrinks its latency only: the limiter follows a lower
    ``anthropic-ratelimit-*-limit`` header, and a scaled simulator reports its limits
    per simulated minute, so its own limits are kept above the limiter's here.
    """
    sim = run_in_thread(
        SimConfig(time_scale=0.01, latency_median_ms=1000, latency_spread=0, seed=3)
    )
    env = {
        "AGENTJOBS_VISIBILITY_TIMEOUT_S": "2",
        "AGENTJOBS_LIMITER_MAX_SLEEP_S": "0.1",
        "AGENTJOBS_LIMIT_HAIKU_RPM": "600",
        "AGENTJOBS_LIMITER_BURST_S": "0.1",  # one request at a time, every 0.1 s
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3",
    }
    n = 60
    try:
        with Drill(sim, env=env) as d:
            d.worker(concurrency=8)
            for i in range(n):
                d.submit(f"backlog {i}")
            acc = d.account(timeout=120)
            assert acc.ended and len(acc.succeeded) == n, acc.other
            # A result's attempts are its key's recorded attempts (the deferrals here:
            # no faults, no 429s) plus the call that succeeded.
            deferrals = sorted(r.result["attempts"] - 1 for r in d.results)
            total = get_limiter().snapshot("haiku")["deferred"]
            assert sim.stats()["ok"] == n and sim.stats()["rate_limited"] == 0
    finally:
        sim.stop()
    assert deferrals[-1] > 3, deferrals  # deferred past Celery's default limit...
    assert sum(deferrals) <= total  # ...each one a limiter refusal
    print(f"backlog: {n} tasks, deferrals per task max {deferrals[-1]}, total {total}")


@pytest.mark.parametrize("annotated", [None, 1], ids=["celery-default", "annotation-1"])
def test_deferred_past_celerys_retry_limit_then_succeeds(
    worker: Any,
    fresh_sim: Any,
    state_redis: redis.Redis,
    env: pytest.MonkeyPatch,
    annotated: int | None,
) -> None:
    if annotated is not None:
        # What task_annotations={"agentjobs.complete": {"max_retries": 1}} does: Celery's
        # Task.annotate sets the attribute on the task class.
        env.setattr(type(app.tasks[TASK_NAME]), "max_retries", annotated)
    # A paused limiter defers every call; countdowns are at most a quarter of this.
    configure(env, visibility_timeout_s=2)
    get_limiter().pause("haiku", 60)
    pending = complete.delay(prompt="wait for the limiter", model="haiku", max_tokens=100)
    wait_for(
        lambda: len(idempotency.attempts(pending.id)) >= 5,
        timeout=20,
        what="a task deferred more than 3 times",
    )
    get_limiter().resume("haiku")
    result = pending.get(timeout=20)
    assert result["attempts"] > 5 and fresh_sim.stats()["messages"] == 1


def test_a_retry_after_the_budget_ran_out_is_dead_lettered(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    # The retry's publish checks the budget again (ClaudeTask.apply_async): reached
    # since the submit, that check must not drop the message; the task ends as the
    # budget's dead letter, as it would have on its next attempt.
    configure(
        env,
        budget_daily_usd=1.0,
        request_timeout_s=1.5,
        retry_backoff_base_s=0.05,
        retry_backoff_max_s=0.1,
    )
    client.reset_client()  # the new request timeout
    pending = complete.delay(prompt="[[sim:latency_ms=5000]] slow", model="haiku", max_tokens=50)
    wait_for(lambda: fresh_sim.stats()["in_flight"] == 1, timeout=10, what="the call running")
    spend(1.0)  # other calls use up the day's budget while this one times out
    with pytest.raises(DeadLetteredError, match="budget"):
        pending.get(timeout=20)
    (record,) = deadletter.records()
    assert record.error_kind == "budget" and len(record.attempts) == 2, record


def test_task_annotations_cannot_add_celerys_autoretry() -> None:
    # A subprocess: annotations apply when the app is finalized, long done in this one.
    code = (
        "from agentjobs.worker.app import app\n"
        "app.conf.task_annotations = {'*': {'autoretry_for': (Exception,)}}\n"
        f"task = app.tasks[{TASK_NAME!r}]\n"
        "assert app.conf.task_annotations and not hasattr(task, '_orig_run')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

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
from harness.drill import Drill


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


#: The backlog: ten minutes of the server's limit, run on the simulator's clock. The
#: rate (20 calls a real second) stays well below what one worker process runs on a
#: shared 2-core machine: a limiter faster than the worker leaves the backlog waiting
#: in the queue, where nothing is deferred.
SIM_RPM = 12
TIME_SCALE = 0.01  # a simulated minute in 0.6 real s: 1200 requests a real minute
LIMITER_MINUTES = 10


@pytest.mark.slow
def test_a_backlog_of_limiter_deferrals_every_task_succeeds() -> None:
    """120 tasks at once: ten minutes of a 12 RPM server, run in about 6 s.

    The simulator states its limits in real time (1200 a minute at this scale) and the
    limiter is set to the same real-time rate, so it paces the whole backlog at 20
    calls a second. A wait past ``AGENTJOBS_LIMITER_MAX_SLEEP_S`` goes back through the
    broker with a countdown of at most a quarter of the visibility timeout (0.5 s here,
    75 s at the default 300 s), so a task near the end of the backlog is deferred about
    as often as one waiting an hour at the defaults: far more than Celery's default
    limit of 3. Every task must end a success, called once.
    """
    n = SIM_RPM * LIMITER_MINUTES
    real_rpm = round(SIM_RPM / TIME_SCALE)
    sim = run_in_thread(
        SimConfig(
            rpm=SIM_RPM,
            time_scale=TIME_SCALE,
            latency_median_ms=1000,  # 10 real ms
            latency_spread=0,
            # Thirty seconds of refill, 0.3 real s: room for a loaded machine's jitter
            # (calls booked 50 ms apart may arrive together). A 429 pauses the group
            # for its retry-after, whole seconds: twenty calls at this rate.
            burst_s=30,
            seed=3,
        )
    )
    env = {
        "AGENTJOBS_VISIBILITY_TIMEOUT_S": "2",
        "AGENTJOBS_LIMITER_MAX_SLEEP_S": "0.1",
        # The server's figures in real time; the token limits match too, so requests
        # per minute is the one that binds.
        "AGENTJOBS_LIMIT_HAIKU_RPM": str(real_rpm),
        "AGENTJOBS_LIMIT_HAIKU_ITPM": str(round(sim.config.itpm / TIME_SCALE)),
        "AGENTJOBS_LIMIT_HAIKU_OTPM": str(round(sim.config.otpm / TIME_SCALE)),
        # The limiter's burst and the room it keeps free on the server's side fit in
        # the server's bucket, with room to spare for jitter.
        "AGENTJOBS_LIMITER_BURST_S": "0.04",
        "AGENTJOBS_LIMITER_HEADROOM_S": "0.02",
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3",
    }
    try:
        with Drill(sim, env=env) as d:
            # All queued before the worker starts: a backlog, not a trickle at the
            # producer's speed.
            for i in range(n):
                d.submit(f"backlog {i}")
            d.worker(concurrency=8)
            acc = d.account(timeout=60)
            assert acc.ended and len(acc.succeeded) == n, (acc.summary(), acc.other)
            # A result's attempts are its key's recorded attempts (a limiter deferral
            # or a 429 wait each: no faults here) plus the call that succeeded.
            deferrals = sorted(r.result["attempts"] - 1 for r in d.results)
            snap = get_limiter().snapshot("haiku")
            stats = sim.stats()
    finally:
        sim.stop()
    assert stats["ok"] == n and stats["duplicates"] == 0, stats
    # The limiter took the server's figure, per real minute, and kept its own rate.
    assert snap["dimensions"]["rpm"]["server_limit"] == real_rpm, snap
    assert snap["dimensions"]["rpm"]["limit"] == real_rpm, snap
    assert deferrals[-1] > 3, deferrals[-20:]  # deferred past Celery's default limit...
    # ...each one a wait: the server saw the successes and the 429s, nothing else.
    assert stats["messages"] == n + stats["rate_limited"], stats
    assert stats["rate_limited"] <= n // 20, stats  # the limiter paced the server's rate
    print(
        f"backlog: {n} tasks, deferrals per task max {deferrals[-1]}, "
        f"median {deferrals[n // 2]}, total {sum(deferrals)} "
        f"(by the limiter's count {snap['deferred']}), 429s {stats['rate_limited']}, "
        f"pull-backs {snap['pullbacks']}"
    )


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
        # a call's bound (Settings.call_timeout_s): about 1 s for 50 tokens
        connect_timeout_s=0.5,
        stream_first_token_allowance_s=0.5,
        stream_min_tokens_per_s=1000,
        retry_backoff_base_s=0.05,
        retry_backoff_max_s=0.1,
    )
    client.reset_client()  # the new timeouts
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

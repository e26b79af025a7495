"""End to end under faults: subprocess workers, a private Redis, the simulator over HTTP.

The simulator's per-request-hash counters are the count of real calls. Every drill
ends with the accounting invariant: submitted = succeeded + dead-lettered (+ still in
the submit ledger: in flight), nothing unaccounted, even when kombu's Redis transport
loses a message (the workers' ledger sweepers send it again).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentjobs.contrib.testing import wait_for
from agentjobs.reliability import deadletter
from agentjobs.simulator import SimConfig, run_in_thread
from harness.drill import Drill

pytestmark = pytest.mark.slow

#: Fast retries, a short visibility timeout and lease, so a killed worker's tasks come
#: back in seconds (the same mechanism as the 300 s production default, scaled).
FAST = {
    "AGENTJOBS_RETRY_MAX_ATTEMPTS": "3",
    "AGENTJOBS_RETRY_BACKOFF_BASE_S": "0.05",
    "AGENTJOBS_RETRY_BACKOFF_MAX_S": "0.5",
    "AGENTJOBS_VISIBILITY_TIMEOUT_S": "4",
    "AGENTJOBS_IDEMPOTENCY_LEASE_S": "1.5",
    "AGENTJOBS_REQUEST_TIMEOUT_S": "2",
}


@pytest.fixture
def sim() -> Iterator[Any]:
    """A private simulator: these drills change its faults and latency."""
    # Output not paced: these drills set their calls' duration with latency_median_ms
    # alone, under request timeouts of a second or two.
    config = SimConfig(latency_median_ms=50, latency_spread=0, output_tokens_per_s=0, seed=5)
    server = run_in_thread(config)
    yield server
    server.stop()


def test_faults_at_20_percent_every_task_ends(sim: Any) -> None:
    sim.configure(fault_529=0.05, fault_500=0.05, fault_drop=0.05, fault_slow=0.05, slow_ms=3000)
    with Drill(sim, env={**FAST, "AGENTJOBS_REQUEST_TIMEOUT_S": "1"}) as d:
        d.worker(concurrency=16)
        d.worker(concurrency=16)
        for i in range(150):
            d.submit(f"fault drill {i}")
        acc = d.account(timeout=90)
        assert acc.balanced, acc.other
        stats = sim.stats()
        assert sum(stats["faults"].values()) > 0.1 * stats["messages"]  # faults did happen
        # Every dead letter has used its whole policy: 3 counted failed attempts.
        dead = list(deadletter.records())
        assert len(dead) == len(acc.dead_lettered)
        for rec in dead:
            assert sum(a.counted for a in rec.attempts) == 3, rec
        # Every succeeded task got a 200. Extra 200s come only from timed-out calls that
        # the server finished after the client gave up (the "slow" fault): a timeout is
        # ambiguous, the one case where a retry can be billed twice (docs/reliability.md).
        calls = d.calls_by_task()
        assert all(calls[t] >= 1 for t in acc.succeeded)
        extra = sum(calls[t] - 1 for t in acc.succeeded) + sum(calls[t] for t in acc.dead_lettered)
        assert extra <= stats["faults"].get("slow", 0)


def test_faults_and_a_kill_9_on_a_backlog_every_task_ends(sim: Any) -> None:
    # 20% 529/500 faults, and a backlog the limiter defers many times (a wait over
    # 0.1 s goes back to the broker, for 1 s at most): every task is retried past
    # Celery's default limit of 3. One worker is killed -9 mid-batch, with its calls,
    # countdown retries and reserved messages. Exactly: submitted = succeeded +
    # dead-lettered, nothing failed otherwise, nothing left in flight.
    # 600 RPM against 16 threads of 400 ms calls (40 a second asked, 10 allowed): the
    # limiter defers many calls however fast or slow this machine runs them.
    sim.configure(fault_529=0.1, fault_500=0.1, latency_median_ms=400, haiku_rpm=600, burst_s=2)
    env = {
        **FAST,
        "AGENTJOBS_RETRY_MAX_ATTEMPTS": "2",  # some dead letters: 1 task in 25
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3",  # outlives the kill, lapses before redelivery
        "AGENTJOBS_LIMIT_HAIKU_RPM": "600",
        "AGENTJOBS_LIMITER_BURST_S": "0.5",
        "AGENTJOBS_LIMITER_MAX_SLEEP_S": "0.1",
    }
    n = 150
    with Drill(sim, env=env) as d:
        a = d.worker(concurrency=8)
        d.worker(concurrency=8)
        for i in range(n):
            d.submit(f"backlog drill {i}")
        wait_for(lambda: d.finished() >= n // 4 and d.calling(a), timeout=120, what="a quarter")
        kill = d.kill(a)
        d.worker(concurrency=8)
        acc = d.account(timeout=120)
        assert acc.ended, (acc.summary(), acc.other, {t: d.diagnose(t) for t in acc.in_flight})
        assert len(acc.succeeded) + len(acc.dead_lettered) == n
        stats = sim.stats()
        assert sum(stats["faults"].values()) > 0.1 * stats["messages"]  # faults did happen
        dead = list(deadletter.records())
        assert sorted(r.task_id for r in dead) == sorted(acc.dead_lettered)
        for rec in dead:  # each dead letter used up the policy: 2 counted failed calls
            assert sum(a.counted for a in rec.attempts) == 2, rec
        # Recorded attempts (deferrals, failed calls) per task: past Celery's limit.
        retries = [r.result["attempts"] - 1 for r in d.results if r.id in acc.succeeded]
        retries += [len(rec.attempts) - 1 for rec in dead]
        assert max(retries) > 3, sorted(retries)
        # A 200 more than once only for a call in flight at the kill (its answer died).
        calls = d.calls_by_task()
        for t in acc.succeeded:
            assert 1 <= calls[t] <= 1 + (t in kill["in_flight"]), t
        for t in acc.dead_lettered:
            assert calls[t] <= (t in kill["in_flight"]), t
        assert kill["in_flight"]  # the kill did hit calls
        print(
            f"faults + kill -9 on a backlog: {acc.summary()}, retries per task max "
            f"{max(retries)}, in flight at the kill {len(kill['in_flight'])}"
        )


def test_kill_9_twice_mid_batch(sim: Any) -> None:
    sim.configure(latency_median_ms=400)
    # Lease 3 s (renewed every 1 s): a dead worker's leases are still there right after
    # the kill, and lapse before its messages come back (visibility timeout 4 s).
    with Drill(sim, env={**FAST, "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3"}) as d:
        a = d.worker(concurrency=4)
        b = d.worker(concurrency=4)
        n = 60
        for i in range(n):
            d.submit(f"kill drill {i}")
        wait_for(lambda: d.finished() >= 12 and d.calling(a), timeout=60, what="a quarter done")
        first = d.kill(a)
        d.worker(concurrency=4)
        wait_for(lambda: d.finished() >= 35 and d.calling(b), timeout=60, what="half done")
        second = d.kill(b)
        d.worker(concurrency=4)
        acc = d.account(timeout=90)
        assert acc.balanced and len(acc.succeeded) == n, {t: d.diagnose(t) for t in acc.other}
        calls = d.calls_by_task()
        in_flight = first["in_flight"] | second["in_flight"]
        # Repeats only for calls in flight at a kill, one per kill that hit the task.
        for t, c in calls.items():
            assert 1 <= c <= 1 + (t in first["in_flight"]) + (t in second["in_flight"]), t
        repeated = {t for t, c in calls.items() if c > 1}
        assert repeated <= in_flight  # only calls whose answer died with a killed worker
        for kill in (first, second):  # a task stored before a kill is never called again
            assert all(calls[t] == kill["calls"][t] for t in kill["done"])
        assert first["in_flight"] and second["in_flight"]  # the kills did hit calls
        print(
            f"kill -9 x2: {n} tasks, in flight at kills {len(in_flight)}, repeated {len(repeated)}"
        )


def test_visibility_timeout_10s_with_15s_calls_no_duplicates(sim: Any) -> None:
    env = {
        **FAST,
        "AGENTJOBS_VISIBILITY_TIMEOUT_S": "10",
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "3",
        "AGENTJOBS_REQUEST_TIMEOUT_S": "60",
    }
    with Drill(sim, env=env) as d:
        d.worker(concurrency=4)
        d.worker(concurrency=4)
        for i in range(4):
            d.submit(f"[[sim:latency_ms=15000]] slow call {i}")
        acc = d.account(timeout=60)
        assert acc.balanced and len(acc.succeeded) == 4, acc.other
        assert d.received() > 4  # the broker did redeliver the running tasks...
        assert d.attempts_by_task() == {t: 1 for t in d.prompts}  # ...and none was called twice


def test_redis_restart_during_a_batch(sim: Any) -> None:
    import kombu.exceptions
    import redis as redis_lib

    sim.configure(latency_median_ms=300)
    # A lease outlives the outage (the production default, 30 s, does too): the calls
    # in flight keep their keys while Redis is down, so no copy calls in parallel.
    env = {**FAST, "AGENTJOBS_IDEMPOTENCY_LEASE_S": "10", "AGENTJOBS_REQUEST_TIMEOUT_S": "10"}
    with Drill(sim, persist=True, env=env) as d:
        d.worker(concurrency=8)
        d.worker(concurrency=8)
        for i in range(40):
            d.submit(f"restart drill {i}")
        # Restart with a backlog, the workers polling: a message a worker's BRPOP pops
        # at the instant Redis goes down is lost by kombu's Redis transport (about one
        # run in five); the workers' ledger sweepers send it again (docs/reliability.md).
        wait_for(lambda: d.finished() >= 10, timeout=30, what="a quarter done")
        d.redis.stop()
        outcome = "succeeded"
        try:  # a producer during the outage: a clear error, or it succeeds
            d.submit("submitted during the outage")
        except (kombu.exceptions.OperationalError, redis_lib.ConnectionError) as exc:
            outcome = "error"  # nothing was enqueued (submit records only what was sent)
            assert "connect" in str(exc).lower()
        d.redis.start()
        acc = d.account(timeout=90)
        assert acc.balanced and not acc.in_flight, {t: d.diagnose(t) for t in acc.other}
        dead = [r.summary() for r in deadletter.records()]
        assert len(acc.succeeded) == len(d.results) == 40 + (outcome == "succeeded"), dead
        calls = d.calls_by_task()
        assert min(calls.values()) >= 1
        print(
            f"redis restart: {len(d.results)} tasks, producer during outage: {outcome}, "
            f"re-sent by the ledger {acc.resent}, "
            f"repeated calls {sum(c - 1 for c in calls.values())}"
        )


def test_warm_shutdown_finishes_running_calls(sim: Any) -> None:
    sim.configure(latency_median_ms=1500)
    env = {**FAST, "AGENTJOBS_REQUEST_TIMEOUT_S": "10"}
    with Drill(sim, env=env) as d:
        w = d.worker(concurrency=4)
        for i in range(10):
            d.submit(f"shutdown drill {i}")
        wait_for(lambda: len(d.held()) == 4, timeout=30, what="4 calls running")
        running = d.held()
        w.stop(timeout=30)  # SIGTERM: warm shutdown
        assert w.proc is not None and w.proc.returncode == 0
        assert all(d.outcome(t) for t in running)  # the running calls finished, stored
        d.worker(concurrency=4)  # the rest, given back to the queue, run elsewhere
        acc = d.account(timeout=60)
        assert acc.balanced and len(acc.succeeded) == 10, acc.other
        assert d.attempts_by_task() == {t: 1 for t in d.prompts}  # nothing called twice

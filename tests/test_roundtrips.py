"""State-store round trips per task, counted exactly: the design's budget as a test.

Each command agentjobs sends to the state store is a round trip: 0.1-0.15 ms of a
worker's CPU (Python included) and one command of the one Redis every worker shares,
so round trips per task times tasks per second is what that Redis must serve. The
merged calls below are what keeps a task at eight. Nothing here is timed: commands
are seen with MONITOR on the private Redis and named by script or command
(harness/roundtrips.py); bench/overhead.py counts them the same way under
load.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import in_process_worker

from agentjobs import complete
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import RateLimitedError, SpendLimitError
from agentjobs.limiter import admission, pause
from agentjobs.limiter.admission import get_limiter
from agentjobs.ops import metrics
from agentjobs.settings import GroupLimits, get_settings, reset_settings
from harness.roundtrips import RoundTrips

#: A ``complete`` task that calls Claude once, in the worker, in order.
WORKER = (
    "metrics_add.lua [tasks_received]",  # task_received, in the consumer
    # the task's start (task_prerun), held until its call starts: one call with the
    # call's in-flight mark
    "metrics_add.lua [tasks_started] +in-flight",
    "idempotency_claim.lua",  # the key's lease (or its stored outcome)
    # limiter: reserve RPM/ITPM/OTPM, take the concurrency lease (no wait), and read
    # the group's spend-limit pause (the pause step's read), in one script
    "acquire.lua",
    "settle.lua",  # limiter: real usage and headers; the lease given back
    "cost_add.lua",  # the day's spend totals
    "idempotency_finish.lua",  # the outcome kept; lease, attempts, ledger entry ended
    # the outcome, with the call's figures held since its answer; in-flight mark dropped
    "metrics_add.lua [api_requests cache_misses cost_usd tasks tokens] -in-flight",
)
#: The same task in the process that submits it.
CALLER = (
    "metrics_add.lua [tasks_published]",  # before_task_publish
    "MULTI ledger",  # the submit ledger's entry, one transaction (after the publish)
)
#: Per worker and period, not per task: its liveness heartbeat, the ledger sweeper,
#: the idempotency heartbeat (every lease / 3, for all the leases a process holds);
#: per connection or process: the SELECT of the state store's DB when a pool opens a
#: connection, SCRIPT EXISTS / LOAD when a script is first used in a pipeline.
HOUSEKEEPING = ("metrics:workers", "ledger:lock", "idempotency_renew.lua", "SELECT", "SCRIPT")


def _housekeeping(name: str) -> bool:
    return any(h in name for h in HOUSEKEEPING)


@pytest.fixture
def quiet_worker_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # No sweep and no lease renewal inside the counted window (both are per period).
    monkeypatch.setenv("AGENTJOBS_LEDGER_SWEEP_INTERVAL_S", "0")
    monkeypatch.setenv("AGENTJOBS_IDEMPOTENCY_LEASE_S", "600")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_a_task_costs_eight_state_store_round_trips(
    sim: Any, purge_queues: None, state_redis: redis.Redis, quiet_worker_env: None
) -> None:
    """A ``complete`` task that calls Claude once takes exactly the eight round trips
    of ``WORKER`` in the worker, and the two of ``CALLER`` where it is submitted.

    The twelve it took before, and the four merges: the concurrency lease taken in the
    limiter's acquire script (for a call that need not wait) and given back in its
    settle script; the spend-pause read in the acquire script (the pause step reads it
    itself only with the limiter off); the task's start written with its call's
    in-flight mark instead of on its own (the in-flight gauge was a ZADD of its own).
    An extra round trip anywhere on the path fails this test: add it to the list only
    with a reason as good as these.
    """
    n = 4
    with in_process_worker(queues=("claude.haiku",), concurrency=2):
        # Warm: scripts loaded, the worker registered, connections open.
        complete.delay(prompt="warm the worker up", model="haiku", max_tokens=8).get(timeout=30)
        wait_for(lambda: metrics.read_total().sum("tasks") == 1, timeout=10, what="warm-up")
        with RoundTrips(get_settings().redis_url).counting() as seen:
            results = [
                complete.delay(prompt=f"count my round trips {i}", model="haiku", max_tokens=8)
                for i in range(n)
            ]
            for r in results:
                r.get(timeout=30)
            # The outcome is written by task_success, after the result is stored.
            wait_for(
                lambda: metrics.read_total(seen.own).sum("tasks") == 1 + n,
                timeout=10,
                what="outcomes",
            )
    named = [name for _, name in seen.named()]
    per_task = Counter(x for x in named if not _housekeeping(x))
    assert per_task == Counter({name: n for name in WORKER + CALLER})
    assert len(WORKER) == 8
    # Lease renewal is per period (every lease / 3 s, one script per lease held then),
    # never per task: at most one wake, for the two leases of two threads, in this window.
    assert Counter(named)["idempotency_renew.lua"] < n


# -- the merged scripts, one by one -------------------------------------------------


def _limiter(state_redis: redis.Redis, concurrency: int = 2) -> Any:
    from agentjobs.limiter.gcra import Limiter, fingerprint

    limits = GroupLimits(rpm=600, itpm=600_000, otpm=600_000, concurrency=concurrency)
    return Limiter(
        state_redis,
        key_fingerprint=fingerprint("sk-roundtrips"),
        limits=lambda group: limits,
        lease_ttl_s=10.0,
        now_ms=lambda: 1_700_000_000_000.0,
    )


def test_acquire_leases_a_call_that_may_start_now(state_redis: redis.Redis) -> None:
    lim = _limiter(state_redis, concurrency=2)
    first = lim.acquire("haiku", 10, 10, lease=True)
    assert first.wait_s == 0 and first.leased
    assert lim.snapshot("haiku")["leases"] == 1
    second = lim.acquire("haiku", 10, 10, lease=True)
    assert second.leased and lim.snapshot("haiku")["leases"] == 2
    full = lim.acquire("haiku", 10, 10, lease=True)  # both slots taken
    assert full.admitted and not full.leased and full.lapse_s == pytest.approx(10.0)
    assert lim.snapshot("haiku")["leases"] == 2
    # without lease=True nothing is leased (the acquire of tests and benchmarks)
    assert not lim.acquire("haiku", 10, 10).leased


def test_acquire_leases_no_call_that_must_sleep_first(state_redis: redis.Redis) -> None:
    lim = _limiter(state_redis, concurrency=100)
    booked = [lim.acquire("haiku", 10, 10, lease=True) for _ in range(25)]  # 10/s, 20 now
    assert all(r.leased for r in booked if r.wait_s == 0)
    sleepers = [r for r in booked if r.wait_s > 0]
    assert sleepers and not any(r.leased for r in sleepers)
    assert lim.snapshot("haiku")["leases"] == len(booked) - len(sleepers)


def test_settle_gives_the_lease_back(state_redis: redis.Redis) -> None:
    lim = _limiter(state_redis, concurrency=1)
    res = lim.acquire("haiku", 10, 10, lease=True)
    assert res.leased
    lim.settle(res, input_tokens=10, output_tokens=5)
    assert lim.snapshot("haiku")["leases"] == 1  # settling alone keeps it
    lim.settle(res, input_tokens=10, output_tokens=5, release=True)
    assert lim.snapshot("haiku")["leases"] == 0


def test_acquire_refuses_while_the_refusing_key_is_set(state_redis: redis.Redis) -> None:
    lim = _limiter(state_redis)
    state_redis.set("agentjobs:pause:haiku", "spend limit reached at noon")
    res = lim.acquire("haiku", 10, 10, lease=True, refused_by="agentjobs:pause:haiku")
    assert res.refused == "spend limit reached at noon" and not res.admitted
    snap = lim.snapshot("haiku")
    assert (snap["admitted"], snap["deferred"], snap["leases"]) == (0, 0, 0)  # untouched
    state_redis.delete("agentjobs:pause:haiku")
    res = lim.acquire("haiku", 10, 10, lease=True, refused_by="agentjobs:pause:haiku")
    assert res.refused == "" and res.admitted and res.leased


# -- the limiter step, with its merged round trips ----------------------------------


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch, sim: Any) -> Iterator[None]:
    monkeypatch.setenv("AGENTJOBS_LIMIT_HAIKU_CONCURRENCY", "1")
    monkeypatch.setenv("AGENTJOBS_LIMITER_MAX_SLEEP_S", "0.2")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_the_admitted_call_holds_its_slot_until_it_is_settled(
    state_redis: redis.Redis, one_slot: None
) -> None:
    from agentjobs.call import Call

    call = Call({"prompt": "hold the slot", "model": "haiku", "max_tokens": 8})
    slept: list[float] = []
    with admission.admitted(call) as held:
        assert get_limiter().snapshot("haiku")["leases"] == 1
        # the one slot is taken: a second call backs off, then goes back to the broker
        other = Call({"prompt": "wait for the slot", "model": "haiku", "max_tokens": 8})
        with (
            pytest.raises(RateLimitedError, match="concurrency"),
            admission.admitted(other, sleep=slept.append),
        ):
            pass
        assert slept  # it backed off (jittered) before giving up
        assert held.holds_lease
    assert not held.holds_lease and get_limiter().snapshot("haiku")["leases"] == 0


def test_a_spend_paused_group_is_refused_with_or_without_the_limiter(
    state_redis: redis.Redis, sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentjobs import pipeline
    from agentjobs.call import Call

    pause.pause_spend("haiku", "spend limit reached at noon", 60)
    sent: list[Call] = []
    for enabled in ("true", "false"):
        monkeypatch.setenv("AGENTJOBS_LIMITER_ENABLED", enabled)
        reset_settings()
        call = Call({"prompt": "refused", "model": "haiku", "max_tokens": 8})
        with pytest.raises(SpendLimitError, match="lift with `agentjobs limiter resume haiku`"):
            pipeline.run([pause.check_pause, admission.admit], call, sent.append)
    assert sent == []
    monkeypatch.undo()
    reset_settings()
    assert get_limiter().snapshot("haiku")["admitted"] == 0  # nothing was reserved


# -- the task's start, held for its call ---------------------------------------------


def test_a_task_that_makes_no_call_still_counts_its_start(
    sim: Any, purge_queues: None, state_redis: redis.Redis
) -> None:
    # The second task of one idempotency key returns the stored outcome without a call:
    # its start, held for a call that never comes, is written with its outcome.
    with in_process_worker(queues=("claude.haiku",), concurrency=2):
        for _ in range(2):
            complete.delay(
                prompt="start without a call", model="haiku", idempotency_key="held-start"
            ).get(timeout=30)
        wait_for(lambda: metrics.read_total().sum("tasks") == 2, timeout=10, what="outcomes")
    total = metrics.read_total()
    assert total.sum("tasks_started") == 2 and total.sum("queue_wait_seconds") == 2
    assert total.sum("api_requests") == 1
    assert metrics.calls_in_flight() == {}

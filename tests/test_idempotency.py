"""Idempotency leases and stored outcomes: real Redis, a real worker, the simulator."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import in_process_worker

from agentjobs.contrib.testing import wait_for
from agentjobs.reliability import idempotency
from agentjobs.settings import get_settings, reset_settings
from agentjobs.worker.tasks import complete


@pytest.fixture
def short_lease(monkeypatch: pytest.MonkeyPatch, state_redis: redis.Redis) -> Iterator[None]:
    monkeypatch.setenv("AGENTJOBS_IDEMPOTENCY_LEASE_S", "0.6")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def test_claim_done_busy_and_lapsed_lease(short_lease: None) -> None:
    k = f"k-{uuid.uuid4()}"
    a = idempotency.try_claim(k, "owner-a")
    assert a.claimed and a.prior_attempts == 0
    assert idempotency.try_claim(k, "owner-a").claimed  # re-entrant for the same owner
    b = idempotency.try_claim(k, "owner-b")
    assert b.state == "busy" and 0 < b.lease_left_ms <= 600
    # No heartbeat (the holder "died"): the lease lapses and b may proceed.
    c = wait_for(lambda: idempotency.try_claim(k, "owner-b").claimed or None, timeout=5)
    assert c
    stored = idempotency.succeeded(idempotency.Claim(k, "owner-b", "claimed"), {"text": "b"})
    assert stored == {"text": "b"}
    # A's late finish (its lease had lapsed) does not overwrite: every copy answers "b".
    late = idempotency.succeeded(idempotency.Claim(k, "owner-a", "claimed"), {"text": "a"})
    assert late == {"text": "b"}
    done = idempotency.try_claim(k, "owner-c")
    assert done.done and done.outcome == {"result": {"text": "b"}}


def test_heartbeat_keeps_a_live_holders_lease(short_lease: None) -> None:
    k = f"hb-{uuid.uuid4()}"
    a = idempotency.try_claim(k, "holder")
    with idempotency.held(a):
        t_end = time.monotonic() + 2.4  # four lease lengths
        while time.monotonic() < t_end:
            assert idempotency.try_claim(k, "intruder").state == "busy"
            time.sleep(0.05)
    # Released from the heartbeat: it lapses within a lease length.
    wait_for(lambda: idempotency.try_claim(k, "intruder").claimed, timeout=5)


def test_waiting_copy_returns_the_holders_result(short_lease: None) -> None:
    k = f"w-{uuid.uuid4()}"
    holder = idempotency.try_claim(k, "holder")
    slept: list[float] = []

    def finish_while_waiting(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            idempotency.succeeded(holder, {"text": "from holder"})

    with idempotency.held(holder):
        got = idempotency.claim(k, "copy", wait_s=60, sleep=finish_while_waiting)
    assert got.done and got.outcome == {"result": {"text": "from holder"}}
    assert len(slept) == 3 and slept[0] < slept[2] <= 0.5  # polls back off


def test_busy_copy_gives_up_after_its_wait(short_lease: None) -> None:
    k = f"g-{uuid.uuid4()}"
    holder = idempotency.try_claim(k, "holder")
    with idempotency.held(holder):
        got = idempotency.claim(k, "copy", wait_s=0.2)
    assert got.state == "busy" and got.waited_s >= 0.2


def test_resubmitted_key_returns_the_stored_result_without_a_call(
    state_redis: redis.Redis, fresh_sim: Any, worker: Any
) -> None:
    key = f"resubmit-{uuid.uuid4()}"
    first = complete.delay(prompt="hello", idempotency_key=key).get(timeout=20)
    again = complete.delay(prompt="hello", idempotency_key=key).get(timeout=20)
    assert again == first and first["idempotency_key"] == key
    assert fresh_sim.stats()["messages"] == 1


def test_task_id_is_the_key_when_none_is_given(
    state_redis: redis.Redis, fresh_sim: Any, worker: Any
) -> None:
    res = complete.delay(prompt="no key")
    out = res.get(timeout=20)
    assert out["idempotency_key"] == res.id
    assert idempotency.outcome(res.id) == {"result": out}


def test_fifty_concurrent_copies_of_one_key_make_one_call(
    state_redis: redis.Redis, fresh_sim: Any, purge_queues: None
) -> None:
    key = f"fifty-{uuid.uuid4()}"
    prompt = "[[sim:latency_ms=300]] the same question"
    with in_process_worker(concurrency=16):
        results = [complete.delay(prompt=prompt, idempotency_key=key) for _ in range(50)]
        outs = [r.get(timeout=60) for r in results]
    stats = fresh_sim.stats()
    assert stats["messages"] == 1 and stats["max_in_flight"] == 1
    assert all(o == outs[0] for o in outs)  # 50 identical results
    assert outs[0]["idempotency_key"] == key


@pytest.fixture
def other_store(redis_server: Any) -> Iterator[redis.Redis]:
    """A second, empty state store (DB 3), not the process's."""
    client = redis.Redis.from_url(f"{redis_server.url}/3")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_a_claim_handed_a_store_and_settings_lives_there(
    state_redis: redis.Redis, other_store: redis.Redis
) -> None:
    # The process's lease is 30 s (the heartbeat beats every 10 s); this claim's is 0.6 s.
    short = get_settings().model_copy(update={"idempotency_lease_s": 0.6})
    k = f"handed-{uuid.uuid4()}"
    a = idempotency.try_claim(k, "holder", client=other_store, settings=short)
    assert a.claimed and 0 < other_store.pttl(idempotency.lease_key(k)) <= 600
    assert not state_redis.exists(idempotency.lease_key(k))  # not in the process's store
    with idempotency.held(a):  # renewed in its store, every third of its own lease
        t_end = time.monotonic() + 2.4  # four lease lengths
        while time.monotonic() < t_end:
            intruder = idempotency.try_claim(k, "intruder", client=other_store, settings=short)
            assert intruder.state == "busy"
            time.sleep(0.05)
    assert idempotency.succeeded(a, {"text": "a"}) == {"text": "a"}
    assert idempotency.outcome(k, client=other_store) == {"result": {"text": "a"}}
    assert idempotency.outcome(k) is None and not other_store.exists(idempotency.lease_key(k))

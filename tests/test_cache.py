"""Response cache: keys, hit, miss, expiry, tenant isolation, single flight."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import in_process_worker

from agentjobs import complete
from agentjobs.contrib.testing import wait_for
from agentjobs.messages.request import CompleteRequest, parse_request
from agentjobs.settings import get_settings, reset_settings
from agentjobs.spend import cache, cost


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


def req(**kw: Any) -> CompleteRequest:
    return parse_request({"prompt": "hello", "model": "haiku", **kw})


# -- which requests, which key --------------------------------------------------------


def test_enabled_by_call_and_setting(env: pytest.MonkeyPatch) -> None:
    # default "deterministic": only temperature=0 requests are cached unless asked
    assert cache.enabled(req(temperature=0))
    assert not cache.enabled(req())
    assert not cache.enabled(req(temperature=0.7))
    assert cache.enabled(req(cache=True, temperature=0.7))
    assert not cache.enabled(req(cache=False, temperature=0))
    env.setenv("AGENTJOBS_CACHE_DEFAULT", "off")
    reset_settings()
    assert not cache.enabled(req(temperature=0))
    assert cache.enabled(req(cache=True))
    env.setenv("AGENTJOBS_CACHE_DEFAULT", "on")
    reset_settings()
    assert cache.enabled(req())


def test_key_is_the_canonical_request_in_the_tenant_namespace() -> None:
    k = cache.entry_key(req(tenant="a"))
    # equal requests written differently: prompt vs messages, alias vs id, 0 vs 0.0
    same = parse_request(
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}],
            "model": "claude-haiku-4-5",
            "tenant": "a",
            "max_tokens": 1024,
            "cache": True,
        }
    )
    assert cache.entry_key(same) == k
    assert cache.entry_key(req(tenant="a", temperature=0)) == cache.entry_key(
        req(tenant="a", temperature=0.0)
    )
    assert ":rc:a:" in k
    # anything the API sees changes the key; another tenant never shares it
    for other in (
        req(tenant="b"),
        req(),
        req(tenant="a", prompt="hello!"),
        req(tenant="a", model="sonnet"),
        req(tenant="a", max_tokens=10),
        req(tenant="a", system="be brief"),
        req(tenant="a", temperature=0.5),
        req(tenant="a", stop_sequences=["x"]),
    ):
        assert cache.entry_key(other) != k


# -- through the worker ---------------------------------------------------------------


def test_hit_miss_and_metrics(worker: Any, fresh_sim: Any, state_redis: redis.Redis) -> None:
    kw = {"prompt": "What is 2+2?", "model": "haiku", "cache": True, "tenant": "t"}
    first = complete.delay(**kw).get(timeout=20)
    second = complete.delay(**kw).get(timeout=20)
    other = complete.delay(**{**kw, "prompt": "What is 3+3?"}).get(timeout=20)
    assert (first["cached"], second["cached"], other["cached"]) == (False, True, False)
    assert fresh_sim.stats()["messages"] == 2
    assert second["text"] == first["text"] and second["usage"] == first["usage"]
    assert second["cost_usd"] == 0.0 and first["cost_usd"] > 0
    assert second["task_id"] != first["task_id"]
    assert second["idempotency_key"] == second["task_id"]
    s = cache.stats()
    assert (s["hits"], s["misses"], s["stores"]) == (1, 2, 2)
    assert s["hit_rate"] == pytest.approx(1 / 3)
    t = cost.day_totals(cost.today())
    assert t.totals["hits"] == 1 and t.totals["calls"] == 3
    assert t.totals["saved_usd"] == pytest.approx(first["cost_usd"])


def test_not_cached_unless_asked(worker: Any, fresh_sim: Any, state_redis: redis.Redis) -> None:
    for _ in range(2):
        r = complete.delay(prompt="no cache please", model="haiku").get(timeout=20)
        assert not r["cached"]
    assert fresh_sim.stats()["messages"] == 2
    assert state_redis.keys("agentjobs:rc:*:*") == []


def test_expiry(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    env.setenv("AGENTJOBS_CACHE_TTL_S", "2")
    reset_settings()
    kw = {"prompt": "expiring", "model": "haiku", "cache": True}
    assert not complete.delay(**kw).get(timeout=20)["cached"]
    key = cache.entry_key(parse_request(kw))
    assert 0 < state_redis.pttl(key) <= 2000  # the entry carries the TTL setting
    wait_for(lambda: state_redis.exists(key) == 0, timeout=5, what="cache entry expiry")
    assert not complete.delay(**kw).get(timeout=20)["cached"]
    assert fresh_sim.stats()["messages"] == 2


def test_tenants_never_share(worker: Any, fresh_sim: Any, state_redis: redis.Redis) -> None:
    kw = {"prompt": "same question", "model": "haiku", "cache": True}
    a1 = complete.delay(**kw, tenant="a").get(timeout=20)
    b1 = complete.delay(**kw, tenant="b").get(timeout=20)
    none1 = complete.delay(**kw).get(timeout=20)
    a2 = complete.delay(**kw, tenant="a").get(timeout=20)
    assert [r["cached"] for r in (a1, b1, none1, a2)] == [False, False, False, True]
    assert a2["tenant"] == "a"
    assert fresh_sim.stats()["messages"] == 3


def test_single_flight_20_concurrent_identical_calls(
    sim: Any, purge_queues: None, state_redis: redis.Redis
) -> None:
    sim.reset()
    # the call lasts 800 ms, so the 20 tasks reach the worker while the first is in flight
    prompt = "[[sim:latency_ms=800]] one answer for all"
    with in_process_worker(concurrency=20):
        results = [
            complete.delay(prompt=prompt, model="haiku", cache=True, tenant="sf") for _ in range(20)
        ]
        out = [r.get(timeout=30) for r in results]
    assert sim.stats()["messages"] == 1
    assert sorted(r["cached"] for r in out) == [False] + [True] * 19
    assert len({r["text"] for r in out}) == 1
    s = cache.stats()
    assert s["hits"] == 19 and s["misses"] == 1
    assert s["coalesced"] >= 1  # most waited for the call in flight rather than finding it done


# -- single flight, the lease itself ----------------------------------------------------


def test_single_flight_in_threads_and_owner_failure(state_redis: redis.Redis) -> None:
    r = req(prompt="threads", cache=True)
    calls: list[int] = []
    go = threading.Event()
    results: list[bool] = []

    def worker(fail: bool) -> None:
        flight = cache.lookup(r)
        try:
            if flight.hit is not None:
                results.append(True)
                return
            calls.append(1)
            go.wait(5)
            if fail:
                raise RuntimeError("owner failed")
            flight.store({"tenant": None, "text": "x"}, r)
            results.append(False)
        except RuntimeError:
            pass
        finally:
            flight.close()

    # the first owner fails: exactly one waiter takes over, the rest get its answer
    owner = threading.Thread(target=worker, args=(True,))
    owner.start()
    wait_for(lambda: calls, timeout=5, what="first owner")
    others = [threading.Thread(target=worker, args=(False,)) for _ in range(10)]
    for t in others:
        t.start()
    go.set()
    for t in [owner, *others]:
        t.join(10)
    assert len(calls) == 2
    assert sorted(results) == [False] + [True] * 9
    assert state_redis.exists(cache.entry_key(r) + ":lock") == 0


def test_wait_is_bounded(state_redis: redis.Redis, env: pytest.MonkeyPatch) -> None:
    env.setenv("AGENTJOBS_CACHE_WAIT_S", "0")
    reset_settings()
    r = req(prompt="bounded", cache=True)
    holder = cache.lookup(r)
    assert holder.token is not None
    naps: list[float] = []
    late = cache.lookup(r, sleep=naps.append)
    # the lease is still held: after the (zero) wait the caller computes without it
    assert late.hit is None and late.token is None and naps == []
    late.store({"tenant": None, "text": "y"}, r)
    holder.close()
    assert cache.lookup(r).hit == {"tenant": None, "text": "y"}


def test_store_and_settings_handed_in(state_redis: redis.Redis, redis_server: Any) -> None:
    other = redis.Redis.from_url(f"{redis_server.url}/3")
    other.flushdb()
    try:
        on = get_settings().model_copy(update={"cache_default": "on"})
        r = req(prompt="handed in", temperature=0.7)  # not cached by the default setting
        assert cache.lookup(r).key is None
        owner = cache.lookup(r, client=other, settings=on)
        assert owner.token is not None
        assert other.exists(cache.entry_key(r) + ":lock") and not state_redis.keys("*")
        owner.store({"tenant": None, "text": "x"}, r)
        assert not other.exists(cache.entry_key(r) + ":lock")
        hit = cache.lookup(r, client=other, settings=on)
        assert hit.hit == {"tenant": None, "text": "x"}
        assert cache.stats(client=other)["hits"] == 1 and cache.stats()["hits"] == 0
    finally:
        other.flushdb()
        other.close()

"""Daily budgets: caps, reservations, actions, and no overshoot under concurrency."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import in_process_worker

from agentjobs import complete
from agentjobs.errors import BudgetDeferredError, BudgetExceededError
from agentjobs.messages.request import parse_request
from agentjobs.messages.result import Usage
from agentjobs.settings import get_settings, reset_settings
from agentjobs.spend import budget, cost


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


def configure(env: pytest.MonkeyPatch, **values: Any) -> None:
    for name, value in values.items():
        env.setenv(f"AGENTJOBS_{name.upper()}", str(value))
    reset_settings()


def spend(usd: float, tenant: str | None = None, model: str = "claude-haiku-4-5") -> None:
    cost.record(model=model, queue="claude.haiku", tenant=tenant, usage=Usage(), cost=usd)


def req(**kw: Any) -> Any:
    return parse_request({"prompt": "hello", "model": "haiku", **kw})


def test_caps_from_settings(env: pytest.MonkeyPatch) -> None:
    assert budget.caps("x") == (None, None) and not budget.enabled("x")
    configure(env, budget_daily_usd=100, budget_tenant_daily_usd=5, budget_tenants='{"vip": 50}')
    assert budget.caps(None) == (100, None)
    assert budget.caps("x") == (100, 5)
    assert budget.caps("vip") == (100, 50)


def test_estimate_is_an_upper_bound_of_the_real_cost(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis
) -> None:
    system = "Follow the house style. " * 600
    # the caller's own one-hour breakpoint in a message, not prompt_cache
    one_hour = {"type": "ephemeral", "ttl": "1h"}
    own_breakpoint = {"type": "text", "text": system * 2, "cache_control": one_hour}
    cases = [
        {"prompt": "short", "model": "haiku", "max_tokens": 50},
        {"prompt": "x " * 3000, "model": "sonnet", "max_tokens": 300},
        {"prompt": "q", "system": system, "model": "sonnet", "prompt_cache": "1h"},
        {"prompt": "q", "system": system, "model": "haiku", "prompt_cache": "5m"},
        {"messages": [{"role": "user", "content": [own_breakpoint]}], "model": "sonnet"},
    ]
    for kw in cases:
        result = complete.delay(**kw).get(timeout=20)
        assert 0 < result["cost_usd"] <= budget.estimate_usd(parse_request(kw))
    assert result["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] > 0


def test_reserve_release_and_refusal(state_redis: redis.Redis, env: pytest.MonkeyPatch) -> None:
    configure(env, budget_daily_usd=1.0, budget_tenant_daily_usd=0.02)
    r = req(tenant="acme", max_tokens=1000)  # ~$0.005 estimate
    est = budget.estimate_usd(r)
    _, res = budget.reserve(r)
    assert res is not None and res.usd == pytest.approx(est, abs=1e-9)
    assert budget.in_flight_usd() == pytest.approx(est, abs=1e-9)
    assert budget.in_flight_usd("acme") == pytest.approx(est, abs=1e-9)
    assert budget.release(res) and not budget.release(res)  # idempotent
    assert budget.in_flight_usd() == 0
    spend(0.02 - est / 2, tenant="acme")
    with pytest.raises(BudgetExceededError, match=r"tenant 'acme' daily budget \$0\.02 reached"):
        budget.reserve(r)
    budget.reserve(req(tenant="other", max_tokens=1000))  # another tenant is not affected
    spend(1.0)
    with pytest.raises(BudgetExceededError, match=r"overall daily budget \$1\.00 reached"):
        budget.reserve(req(tenant="third"))


def test_a_killed_workers_reservation_lapses(
    state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    configure(env, budget_daily_usd=0.01)
    r = req(max_tokens=1500)  # ~$0.0075: only one fits under $0.01
    budget.reserve(r, lease_s=0.05)  # never released: its worker "died"
    from agentjobs.contrib.testing import wait_for

    def admitted() -> bool:
        try:
            budget.release(budget.reserve(r)[1])
            return True
        except BudgetExceededError:
            return False

    wait_for(admitted, timeout=5, what="lapsed reservation")
    assert budget.in_flight_usd() == 0


def test_submit_check_rejects_with_a_clear_error(
    state_redis: redis.Redis, env: pytest.MonkeyPatch, purge_queues: None
) -> None:
    configure(env, budget_tenants='{"acme": 1}')
    spend(0.9999, tenant="acme")
    with pytest.raises(BudgetExceededError) as info:
        complete.delay(prompt="hi", model="sonnet", tenant="acme")
    msg = str(info.value)
    assert "tenant 'acme' daily budget $1.00 reached" in msg and "resets at 00:00 UTC" in msg
    complete.delay(prompt="hi", model="sonnet", tenant="other")  # no cap for others


def test_downgrade_at_submit_and_in_the_worker(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    configure(env, budget_tenants='{"acme": 0.01}', budget_action="downgrade")
    kw = {"prompt": "hi", "model": "sonnet", "tenant": "acme", "max_tokens": 1000}
    # Sonnet's estimate ($0.015) is over the cap, Haiku's ($0.005) is not
    result = complete.delay(**kw).get(timeout=20)
    assert result["model"] == "claude-haiku-4-5" and result["queue"] == "claude.haiku"
    assert "budget downgrade claude-sonnet-4-6 -> claude-haiku-4-5" in result["route_reason"]
    sent, res = budget.reserve(parse_request(kw))
    assert sent.model == "claude-haiku-4-5" and res is not None
    spend(0.01, tenant="acme")  # nothing cheaper than Haiku left: rejected
    with pytest.raises(BudgetExceededError):
        complete.delay(**kw)


def test_defer_action(state_redis: redis.Redis, env: pytest.MonkeyPatch) -> None:
    configure(env, budget_daily_usd=0.001, budget_action="defer", budget_defer_s=42)
    r = req(max_tokens=1000)
    assert budget.check(r) is r  # accepted at submit: the worker waits for budget
    with pytest.raises(BudgetDeferredError) as info:
        budget.reserve(r)
    assert info.value.retry_after_s == 42
    near_midnight = dt.datetime(2026, 3, 1, 23, 59, 50, tzinfo=dt.UTC)
    assert budget.defer_countdown(get_settings(), near_midnight) == pytest.approx(11)


def test_concurrent_reservations_never_pass_the_cap(
    state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    """40 threads race for a tenant cap that fits 9 estimates: exactly 9 are admitted.
    If those calls then cost twice their estimate, the spend passes the cap by no more
    than what the calls in flight cost beyond their estimates; then nothing is admitted."""
    configure(env, budget_daily_usd=1.0, budget_tenant_daily_usd=0.05)
    r = req(tenant="race", max_tokens=1000)
    est = budget.estimate_usd(r)
    fits = int(0.05 // est)
    assert fits == 9
    start = threading.Barrier(40)
    lock = threading.Lock()
    admitted: list[budget.Hold] = []

    def race() -> None:
        start.wait(10)
        try:
            _, res = budget.reserve(r)
        except BudgetExceededError:
            return
        assert res is not None
        with lock:
            admitted.append(res)

    threads = [threading.Thread(target=race) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(admitted) == fits
    assert budget.in_flight_usd("race") == pytest.approx(fits * est, abs=1e-9)
    for res in admitted:  # each call costs twice its estimate
        spend(2 * est, tenant="race")
        budget.release(res)
    spent = cost.spent_usd("race")
    assert 0.05 < spent <= 0.05 + fits * (2 * est - est) + 1e-9
    assert budget.in_flight_usd("race") == 0
    with pytest.raises(BudgetExceededError):
        budget.reserve(r)


def test_no_overshoot_when_calls_cost_at_most_their_estimate(
    state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    """20 threads reserve, spend and release in a loop: the spend never passes the cap."""
    configure(env, budget_tenant_daily_usd=0.1)
    r = req(tenant="loop", max_tokens=1000)
    actual = 0.8 * budget.estimate_usd(r)
    start = threading.Barrier(20)
    admitted = 0
    lock = threading.Lock()

    def loop() -> None:
        nonlocal admitted
        start.wait(10)
        while True:
            try:
                _, res = budget.reserve(r)
            except BudgetExceededError:
                return
            with lock:
                admitted += 1
            spend(actual, tenant="loop")
            budget.release(res)

    threads = [threading.Thread(target=loop) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    spent = cost.spent_usd("loop")
    assert spent == pytest.approx(admitted * actual)
    assert 0.1 - budget.estimate_usd(r) < spent <= 0.1  # used up, never passed
    assert budget.in_flight_usd() == 0


def test_budget_under_concurrency_through_the_worker(
    sim: Any, purge_queues: None, state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    """Real calls, 16 threads: the spend ends at or under the cap, the rest are refused."""
    sim.reset()
    cap = 0.012
    configure(env, budget_tenants=f'{{"load": {cap}}}')
    kw = {"model": "haiku", "tenant": "load", "max_tokens": 200}
    accepted, refused_at_submit = [], 0
    with in_process_worker(concurrency=16):
        for i in range(40):
            try:
                p = f"[[sim:latency_ms=100]] [[sim:output_tokens=200]] q{i}"
                accepted.append(complete.delay(prompt=p, **kw))
            except BudgetExceededError:
                refused_at_submit += 1
        for a in accepted:
            a.get(timeout=30, propagate=False)
    ok = [a.result for a in accepted if a.successful()]
    refused = [a.result for a in accepted if not a.successful()]
    spent = cost.spent_usd("load")
    assert spent == pytest.approx(sum(r["cost_usd"] for r in ok))
    assert spent <= cap  # every estimate is an upper bound: no overshoot at all
    assert len(ok) >= 5 and len(refused) + refused_at_submit >= 20
    assert all("budget" in str(e) for e in refused)
    assert budget.in_flight_usd() == 0
    assert sim.stats()["messages"] == len(ok)


def test_release_survives_a_state_store_error(state_redis: redis.Redis) -> None:
    from agentjobs.contrib.testing import free_port

    res = budget.Hold(cost.today(), "id\t(none)\t5", "(none)", 5)
    dead = redis.Redis(port=free_port(), socket_connect_timeout=0.2)
    assert budget.release(res, client=dead) is False  # logged; the lease lapses later


def test_defer_through_the_worker_retries_until_the_budget_frees(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    from agentjobs.contrib.testing import wait_for

    configure(env, budget_daily_usd=1.0, budget_action="defer", budget_defer_s=0.2)
    spend(1.0)  # today's budget is used up
    pending = complete.delay(prompt="later, please", model="haiku", max_tokens=100)
    wait_for(lambda: pending.state == "RETRY", timeout=10, what="a deferred (retrying) task")
    assert fresh_sim.stats()["messages"] == 0
    configure(env, budget_daily_usd=2.0)  # the operator raises the cap
    result = pending.get(timeout=20)
    assert result["cost_usd"] > 0 and fresh_sim.stats()["messages"] == 1


def test_settings_and_store_handed_in(state_redis: redis.Redis, redis_server: Any) -> None:
    # No AGENTJOBS_BUDGET_* in the environment: the caps come from the settings given.
    other = redis.Redis.from_url(f"{redis_server.url}/3")
    other.flushdb()
    try:
        capped = get_settings().model_copy(update={"budget_daily_usd": 0.01})
        r = req(max_tokens=1500)  # ~$0.0075: one fits under $0.01
        assert budget.reserve(r) == (r, None)  # the process's settings: no cap
        _, held = budget.reserve(r, client=other, settings=capped)
        assert isinstance(held, budget.Hold)
        assert budget.in_flight_usd(client=other) == pytest.approx(held.usd)
        assert budget.in_flight_usd() == 0  # nothing in the process's store
        with pytest.raises(BudgetExceededError):
            budget.check(r, client=other, settings=capped)
        assert budget.release(held, client=other) and budget.in_flight_usd(client=other) == 0
        cost.record(
            model="claude-haiku-4-5", queue="q", tenant=None, usage=Usage(), cost=1.0, client=other
        )
        assert cost.spent_usd(client=other) == 1.0 and cost.spent_usd() == 0
    finally:
        other.flushdb()
        other.close()

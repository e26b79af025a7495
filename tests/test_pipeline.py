"""The task path as a list of steps: order, unwinding, and each step against a stand-in
``next`` (a real Redis under the steps that use it; no worker, no API call)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs import pipeline
from agentjobs.call import Call
from agentjobs.errors import BudgetExceededError, RequestError
from agentjobs.messages.result import ClaudeResult, Usage
from agentjobs.settings import reset_settings
from agentjobs.spend import budget, cache, cost
from agentjobs.spend.routing import route


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


def configure(env: pytest.MonkeyPatch, **values: Any) -> None:
    for name, value in values.items():
        env.setenv(f"AGENTJOBS_{name.upper()}", str(value))
    reset_settings()


def result_of(call: Call, text: str = "ok", usd: float = 0.001) -> ClaudeResult:
    return ClaudeResult(
        id="msg_test",
        model=call.request.model,
        text=text,
        content=[{"type": "text", "text": text}],
        stop_reason="end_turn",
        usage=Usage(input_tokens=10, output_tokens=5),
        cost_usd=usd,
        latency_ms=1.0,
        attempts=call.attempts,
        cached=False,
        queue=call.queue,
        worker=call.worker,
        idempotency_key=call.key,
        tenant=call.request.tenant,
    )


def test_steps_run_outermost_first_and_unwind_in_reverse() -> None:
    seen: list[str] = []

    def step(name: str) -> pipeline.Step:
        def run(call: Call, next: pipeline.Next) -> Any:
            seen.append(f"enter {name}")
            try:
                return next(call)
            finally:
                seen.append(f"leave {name}")

        return run

    out = pipeline.run([step("a"), step("b")], Call({"prompt": "x"}), lambda c: "answer")
    assert out == "answer"
    assert seen == ["enter a", "enter b", "leave b", "leave a"]


def test_a_step_may_answer_without_the_rest() -> None:
    def short(call: Call, next: pipeline.Next) -> Any:
        return "short"

    def never(call: Call, next: pipeline.Next) -> Any:
        raise AssertionError("not reached")

    assert pipeline.run([short, never], Call({"prompt": "x"}), never) == "short"


def test_the_worker_path_is_the_documented_order() -> None:
    names = [s.__name__ for s in pipeline.WORKER_STEPS]
    assert names == [
        "to_batch",
        "claim",
        "route",
        "respond_from_cache",
        "hold_budget",
        "record_cost",
        "check_pause",
        "admit",
        "send",
    ]


def test_call_parses_once_and_a_new_request_drops_what_was_derived() -> None:
    call = Call({"prompt": "hello", "model": "sonnet", "max_tokens": 10})
    first = call.request
    assert call.request is first
    assert (call.family, call.group, call.queue) == ("sonnet", "sonnet", "claude.sonnet")
    params = call.params
    assert call.params is params and params["max_tokens"] == 10
    estimate = call.input_tokens
    call.request = first.model_copy(update={"model": "claude-haiku-4-5"})
    assert (call.family, call.queue) == ("haiku", "claude.haiku")
    assert call.params["model"] == "claude-haiku-4-5"
    assert call.input_tokens == estimate  # same text


def test_bad_kwargs_raise_where_first_read() -> None:
    call = Call({"prompt": ""})  # building the context does not validate
    with pytest.raises(RequestError, match="prompt must not be empty"):
        _ = call.request


def test_route_decides_auto_and_keeps_the_reason() -> None:
    call = Call({"prompt": "Classify: spam?", "model": "auto"})
    pipeline.run([route], call, lambda c: None)
    assert call.family == "haiku"
    assert call.request.route_reason and call.request.route_reason.startswith("auto -> ")


def test_hold_budget_releases_after_the_rest_and_on_failure(
    env: pytest.MonkeyPatch, state_redis: redis.Redis
) -> None:
    configure(env, budget_daily_usd=100)
    call = Call({"prompt": "hello", "model": "haiku", "max_tokens": 100, "tenant": "t1"})
    held: list[float] = []

    def inner(c: Call) -> ClaudeResult:
        held.append(budget.in_flight_usd())
        return result_of(c)

    pipeline.run([budget.hold_budget], call, inner)
    assert held[0] == pytest.approx(budget.estimate_usd(call.request))
    assert budget.in_flight_usd() == 0

    def failing(c: Call) -> ClaudeResult:
        assert budget.in_flight_usd() > 0
        raise RuntimeError("the call failed")

    with pytest.raises(RuntimeError):
        pipeline.run([budget.hold_budget], Call(dict(call.kwargs)), failing)
    assert budget.in_flight_usd() == 0


def test_hold_budget_downgrades_the_call_it_passes_on(
    env: pytest.MonkeyPatch, state_redis: redis.Redis
) -> None:
    call = Call({"prompt": "hello", "model": "sonnet", "max_tokens": 1000})
    cap = (
        budget.estimate_usd(call.request)
        + budget.estimate_usd(call.request.model_copy(update={"model": "claude-haiku-4-5"}))
    ) / 2  # the Sonnet estimate is over it, Haiku's under
    configure(env, budget_daily_usd=cap, budget_action="downgrade")
    families: list[str] = []
    pipeline.run([budget.hold_budget], call, lambda c: families.append(c.family) or result_of(c))
    assert families == ["haiku"] and "budget downgrade" in (call.request.route_reason or "")

    configure(env, budget_daily_usd=cap / 1000, budget_action="reject")
    with pytest.raises(BudgetExceededError):
        pipeline.run([budget.hold_budget], Call({"prompt": "x", "model": "haiku"}), result_of)


def test_record_cost_adds_the_result_it_passes_back(state_redis: redis.Redis) -> None:
    call = Call({"prompt": "hello", "model": "haiku", "tenant": "acme"})
    out = pipeline.run([cost.record_cost], call, lambda c: result_of(c, usd=0.25))
    assert out.cost_usd == 0.25
    assert cost.spent_usd("acme") == pytest.approx(0.25)


def test_cache_step_answers_a_repeat_without_the_rest(state_redis: redis.Redis) -> None:
    kwargs = {"prompt": "cache me", "model": "haiku", "temperature": 0}
    calls: list[str] = []

    def inner(c: Call) -> ClaudeResult:
        calls.append(c.key)
        return result_of(c, text="fresh")

    first = pipeline.run([cache.respond_from_cache], Call(kwargs, key="k1"), inner)
    second = pipeline.run([cache.respond_from_cache], Call(kwargs, key="k2"), inner)
    assert calls == ["k1"]
    assert (first.cached, second.cached) == (False, True)
    assert second.text == "fresh" and second.cost_usd == 0 and second.idempotency_key == "k2"

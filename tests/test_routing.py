"""model="auto": the routing policy, its reasons, and the route through the worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs import complete
from agentjobs.messages.request import parse_request
from agentjobs.settings import reset_settings
from agentjobs.spend import cost, routing

HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-6"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


def route(**kw: Any) -> tuple[str, str]:
    req = routing.choose_model(parse_request({"model": "auto", **kw}))
    assert req.route_reason is not None
    return req.model, req.route_reason


@pytest.mark.parametrize(
    ("kw", "model", "why"),
    [
        ({"prompt": "Translate 'cat' to French."}, HAIKU, "short"),
        ({"prompt": "Summarise: the meeting moved to 3pm."}, HAIKU, "no code/reasoning cue"),
        ({"prompt": "hi", "metadata": {"complexity": "high"}}, SONNET, "hint"),
        ({"prompt": "Prove it", "metadata": {"complexity": "low"}}, HAIKU, "hint"),
        ({"prompt": "hi", "max_tokens": 4000}, SONNET, "long output"),
        ({"prompt": "word " * 6000}, SONNET, "long input"),
        ({"prompt": "Fix this:\n```py\nx=1\n```"}, SONNET, "cue '```'"),
        ({"prompt": "Please debug my crash"}, SONNET, "code/reasoning cue"),
        ({"prompt": "Explain step by step why"}, SONNET, "code/reasoning cue"),
        ({"prompt": "Write a function that sorts"}, SONNET, "code/reasoning cue"),
        ({"prompt": "Prove that there are infinitely many primes"}, SONNET, "'Prove'"),
    ],
)
def test_policy(kw: dict[str, Any], model: str, why: str) -> None:
    chosen, reason = route(**kw)
    assert chosen == model
    assert reason.startswith(f"auto -> {model}: ") and why in reason


def test_a_long_shared_system_prompt_does_not_count_as_long_input() -> None:
    assert route(prompt="Classify: spam?", system="Rules. " * 20_000)[0] == HAIKU
    long_messages = [{"role": "user", "content": "data " * 3000}] * 3
    assert route(messages=long_messages)[0] == SONNET


def test_thresholds_are_settings(env: pytest.MonkeyPatch) -> None:
    env.setenv("AGENTJOBS_ROUTE_LONG_TOKENS", "15")
    env.setenv("AGENTJOBS_ROUTE_LONG_OUTPUT_TOKENS", "50")
    reset_settings()
    sixty = "a plain sentence of about sixty characters in total, really"  # ~17 tokens
    assert route(prompt=sixty)[0] == SONNET
    assert route(prompt=sixty[:45])[0] == HAIKU  # ~13 tokens
    assert route(prompt="hi", max_tokens=51)[0] == SONNET
    assert route(prompt="hi", max_tokens=50)[0] == HAIKU


def test_verdict_parsing() -> None:
    assert routing.verdict(" COMPLEX.")[0] == SONNET
    assert routing.verdict("simple")[0] == HAIKU
    model, why = routing.verdict("maybe")
    assert model is None and "'maybe'" in why


def test_auto_through_the_worker_records_the_choice(
    worker: Any, fresh_sim: Any, state_redis: redis.Redis
) -> None:
    easy = complete.delay(prompt="Say hello", model="auto").get(timeout=20)
    hard = complete.delay(prompt="Refactor this class for testability", model="auto")
    hard_r = hard.get(timeout=20)
    assert (easy["model"], easy["queue"]) == (HAIKU, "claude.haiku")
    assert (hard_r["model"], hard_r["queue"]) == (SONNET, "claude.sonnet")
    assert easy["route_reason"].startswith("auto -> claude-haiku-4-5")
    assert "Refactor" in hard_r["route_reason"]
    assert fresh_sim.stats()["by_group"] == {"haiku": 1, "sonnet": 1}


def test_explicit_models_are_not_routed(worker: Any, fresh_sim: Any) -> None:
    r = complete.delay(prompt="Refactor this class", model="haiku").get(timeout=20)
    assert r["model"] == HAIKU and r["route_reason"] is None


def test_classifier_call_for_undecided_requests(
    sim: Any, state_redis: redis.Redis, env: pytest.MonkeyPatch
) -> None:
    sim.reset()
    env.setenv("AGENTJOBS_ROUTE_CLASSIFIER", "true")
    reset_settings()
    # rules decide: no classifier call
    assert route(prompt="Refactor this class")[0] == SONNET
    assert sim.stats()["messages"] == 0
    # undecided: one small Haiku call; the simulator answers neither word -> default
    model, reason = route(prompt="Tell me about otters", tenant="zoo")
    assert sim.stats()["messages"] == 1 and sim.stats()["by_group"] == {"haiku": 1}
    assert model == HAIKU and "classifier answered" in reason
    t = cost.day_totals(cost.today())
    assert t.by["queue"]["router"]["calls"] == 1 and t.by["tenant"]["zoo"]["usd"] > 0


def test_send_task_with_auto_lands_on_the_chosen_queue(worker: Any, fresh_sim: Any) -> None:
    from agentjobs import app

    sent = app.send_task(
        "agentjobs.complete", kwargs={"prompt": "Debug this stack trace", "model": "auto"}
    )
    r = sent.get(timeout=20)
    assert (r["model"], r["queue"]) == (SONNET, "claude.sonnet")
    assert r["route_reason"].startswith("auto -> claude-sonnet-4-6")

"""One pause concept per rate-limit group: the spend limit's (calls refused) and the
limiter's (a 429's or an operator's: calls wait), shown together by `agentjobs limiter
show` and `agentjobs stats`, lifted by one command, `agentjobs limiter resume GROUP`."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs.cli import main
from agentjobs.errors import DeadLetteredError
from agentjobs.limiter import pause
from agentjobs.limiter.admission import get_limiter
from agentjobs.limiter.gcra import Limiter, fingerprint
from agentjobs.settings import GroupLimits
from agentjobs.worker.tasks import complete


class Clock:
    def __init__(self, t_ms: float = 1_700_000_000_000.0) -> None:
        self.t = t_ms

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds * 1000.0


@pytest.fixture
def clock() -> Iterator[Clock]:
    yield Clock()


def make(state_redis: redis.Redis, clock: Clock) -> Limiter:
    limits = GroupLimits(rpm=600, itpm=600_000, otpm=600_000, concurrency=100)
    return Limiter(
        state_redis,
        key_fingerprint=fingerprint("sk-test"),
        limits=lambda group: limits,
        burst_s=2.0,
        headroom_s=0.0,
        now_ms=clock,
    )


# -- the limiter's pause, on an injected clock -----------------------------------------


def test_resume_lets_calls_start_at_once(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock)
    assert lim.acquire("opus", 10, 10).wait_s == 0
    lim.pause("opus", 30)
    assert lim.acquire("opus", 10, 10).wait_s == pytest.approx(30.0, abs=0.2)
    clock.advance(5)
    assert lim.resume("opus") == pytest.approx(25.0)
    # Not only pause_until: the schedule the pause moved moves back too.
    assert lim.acquire("opus", 10, 10).wait_s == pytest.approx(0.0, abs=0.2)
    assert lim.paused_for("opus") == 0 and lim.pause_state("opus") is None
    assert lim.resume("opus") == 0  # nothing left to lift


def test_a_call_booked_behind_the_pause_moves_earlier(
    state_redis: redis.Redis, clock: Clock
) -> None:
    lim = make(state_redis, clock)
    lim.pause("opus", 30)
    booked = lim.acquire("opus", 10, 10)
    assert booked.wait_s == pytest.approx(30.0)
    clock.advance(10)
    lim.resume("opus")
    # its sleeper follows the schedule: it may start now, 20 s earlier than booked
    assert lim.drift(booked) == pytest.approx(-20.0)


def test_pause_state_names_its_kind_and_reason(state_redis: redis.Redis, clock: Clock) -> None:
    lim = make(state_redis, clock)
    lim.pause("sonnet", 60, "provider incident")
    assert lim.pause_state("sonnet") == (pytest.approx(60.0), "operator", "provider incident")
    # a shorter 429 inside the operator's pause does not change it...
    lim.settle(lim.acquire("haiku", 10, 10), retry_after_s=3, refund_output=True)
    res = lim.acquire("sonnet", 10, 10)
    lim.settle(res, retry_after_s=5, refund_output=True)
    assert lim.pause_state("sonnet")[1] == "operator"  # type: ignore[index]
    # ...a 429 that outlasts it makes it the API's
    lim.settle(res, retry_after_s=90, refund_output=True)
    left, kind, reason = lim.pause_state("sonnet")  # type: ignore[misc]
    assert kind == "rate_limit" and "429" in reason and left == pytest.approx(90.0)
    assert lim.pause_state("haiku")[1] == "rate_limit"  # type: ignore[index]


# -- one view, one lift ----------------------------------------------------------------


def test_both_pauses_in_one_view_lifted_by_one_call(state_redis: redis.Redis) -> None:
    lim = get_limiter()
    pause.pause_spend("opus", "spend limit reached at noon", 3600)
    lim.pause("opus", 120, "deploy")
    found = pause.active("opus")
    assert [(p.kind, p.effect, p.reason) for p in found] == [
        ("spend_limit", "refused", "spend limit reached at noon"),
        ("operator", "held", "deploy"),
    ]
    assert 3590 < found[0].seconds_left <= 3600 and 110 < found[1].seconds_left <= 120
    assert pause.active("haiku") == []
    lifted = pause.resume("opus")
    assert [p.kind for p in lifted] == ["spend_limit", "operator"]
    assert pause.active("opus") == [] and pause.spend_paused("opus") is None


def test_limiter_show_and_stats_show_pauses(state_redis: redis.Redis) -> None:
    runner = CliRunner()
    pause.pause_spend("sonnet", "spend limit reached at noon", 600)
    assert (
        runner.invoke(main, ["limiter", "pause", "opus", "30", "--reason", "deploy"]).exit_code == 0
    )

    out = runner.invoke(main, ["limiter", "show", "--json"])
    assert out.exit_code == 0, out.output
    by_group = {s["group"]: s["pauses"] for s in json.loads(out.output)}
    assert by_group["haiku"] == []
    (spend,) = by_group["sonnet"]
    assert (spend["kind"], spend["effect"], spend["reason"]) == (
        "spend_limit",
        "refused",
        "spend limit reached at noon",
    )
    assert 590 < spend["seconds_left"] <= 600
    (held,) = by_group["opus"]
    assert (held["kind"], held["effect"], held["reason"]) == ("operator", "held", "deploy")

    table = runner.invoke(main, ["limiter"]).output
    assert re.search(
        r"PAUSED: spend_limit, \d+s left \(spend limit reached at noon; calls dead-lettered "
        r"without calling\); lift with `agentjobs limiter resume sonnet`",
        table,
    ), table
    assert re.search(r"PAUSED: operator, \d+s left \(deploy; calls wait\)", table), table

    stats = json.loads(runner.invoke(main, ["stats", "--json"]).output)
    assert {(p["group"], p["kind"]) for p in stats["live"]["pauses"]} == {
        ("sonnet", "spend_limit"),
        ("opus", "operator"),
    }
    only_opus = json.loads(runner.invoke(main, ["stats", "--json", "-q", "claude.opus"]).output)
    assert [p["group"] for p in only_opus["live"]["pauses"]] == ["opus"]
    text = runner.invoke(main, ["stats"]).output
    assert "paused groups:" in text and "sonnet: spend_limit" in text
    assert "lift with `agentjobs limiter resume opus`" in text

    for group in ("sonnet", "opus"):
        assert runner.invoke(main, ["limiter", "resume", group]).exit_code == 0
    assert "paused groups: none" in runner.invoke(main, ["stats"]).output


@pytest.mark.parametrize("command", [["limiter", "resume"], ["dlq", "resume"]])
def test_one_resume_command_and_its_alias_lift_both(
    command: list[str], state_redis: redis.Redis
) -> None:
    runner = CliRunner()
    pause.pause_spend("haiku", "spend limit reached at noon", 600)
    get_limiter().pause("haiku", 60)
    out = runner.invoke(main, [*command, "haiku", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["group"] == "haiku" and data["was_paused"] is True
    assert [p["kind"] for p in data["lifted"]] == ["spend_limit", "operator"]
    assert pause.active("haiku") == []
    again = runner.invoke(main, [*command, "haiku"])
    assert again.exit_code == 0 and "haiku: was not paused" in again.output
    # the text output says what was lifted, and how to replay what was refused meanwhile
    pause.pause_spend("haiku", "spend limit reached at noon", 600)
    text = runner.invoke(main, [*command, "haiku"]).output
    assert "haiku: lifted spend_limit" in text
    assert "agentjobs dlq replay --all --queue claude.haiku" in text


def test_a_refused_call_names_the_one_resume_command(fresh_sim: Any, worker: Any) -> None:
    pause.pause_spend("haiku", "spend limit reached at noon", 60)
    try:
        res = complete.delay(prompt="refused while paused", model="haiku")
        with pytest.raises(DeadLetteredError) as info:
            res.get(timeout=20)
        assert "lift with `agentjobs limiter resume haiku`, then replay" in str(info.value)
        assert fresh_sim.stats()["messages"] == 0
    finally:
        pause.resume("haiku")

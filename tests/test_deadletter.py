"""Dead letters: recorded whole, bounded, listed, replayed, purged (real worker + simulator)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs.cli import main
from agentjobs.errors import DeadLetteredError
from agentjobs.limiter import pause
from agentjobs.reliability import deadletter, idempotency
from agentjobs.settings import reset_settings
from agentjobs.worker.tasks import complete


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch, state_redis: redis.Redis) -> Iterator[None]:
    monkeypatch.setenv("AGENTJOBS_RETRY_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AGENTJOBS_RETRY_BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("AGENTJOBS_RETRY_BACKOFF_MAX_S", "0.05")
    monkeypatch.setenv("AGENTJOBS_RETRY_RATE_LIMIT_MAX_TOTAL_S", "2.5")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


def ok_calls(sim: Any) -> int:
    return int(sim.stats()["ok"])


def dead_letter_of(res: Any) -> str:
    with pytest.raises(DeadLetteredError) as info:
        res.get(timeout=20)
    message = str(info.value)
    assert "dead-lettered as dl_" in message
    return message.split("dead-lettered as ")[1].split()[0]


def test_permanent_error_is_dead_lettered_after_one_call(
    fast_retries: None, fresh_sim: Any, worker: Any
) -> None:
    key = f"perm-{uuid.uuid4()}"
    res = complete.delay(prompt="[[sim:error=400]] hi", idempotency_key=key, metadata={"a": 1})
    dl_id = dead_letter_of(res)
    assert fresh_sim.stats()["messages"] == 1  # exactly one call
    assert res.state == "FAILURE" and type(res.result).__name__ == "DeadLetteredError"
    rec = deadletter.get(dl_id)
    assert rec is not None
    assert (rec.error_class, rec.error_kind, rec.status) == ("BadRequestError", "bad_request", 400)
    assert rec.request["prompt"] == "[[sim:error=400]] hi" and rec.request["metadata"] == {"a": 1}
    assert (rec.queue, rec.task_id, rec.idempotency_key) == ("claude.haiku", res.id, key)
    assert rec.worker and len(rec.attempts) == 1 and rec.attempts[0].status == 400
    # A resubmission of the dead key fails at once with the same dead letter, no call.
    again = complete.delay(prompt="[[sim:error=400]] hi", idempotency_key=key)
    assert dead_letter_of(again) == dl_id
    assert fresh_sim.stats()["messages"] == 1


def test_transient_errors_use_the_whole_policy(
    fast_retries: None, fresh_sim: Any, worker: Any
) -> None:
    res = complete.delay(prompt="[[sim:error=529]] hi")
    dl_id = dead_letter_of(res)
    rec = deadletter.get(dl_id)
    assert rec is not None and rec.error_kind == "overloaded"
    assert [a.kind for a in rec.attempts] == ["overloaded"] * 3  # max_attempts=3
    assert all(a.counted for a in rec.attempts)
    assert rec.attempts[0].at <= rec.attempts[1].started_at  # attempts in order, timed
    assert fresh_sim.stats()["messages"] == 3
    assert "3 failed attempts" in rec.reason


def test_rate_limits_do_not_use_the_error_budget(
    fast_retries: None, fresh_sim: Any, worker: Any
) -> None:
    # Every call answers 429 with retry-after 1 s: more calls than max_attempts (3) are
    # made, none counted, until the 2.5 s rate-limit total is used up.
    res = complete.delay(prompt="[[sim:error=429]] hi")
    rec = deadletter.get(dead_letter_of(res))
    assert rec is not None and rec.error_kind == "rate_limited"
    assert len(rec.attempts) >= 3 and not any(a.counted for a in rec.attempts)
    assert "rate limited" in rec.reason


def test_spend_limit_dead_letters_and_pauses_the_group(
    fast_retries: None, fresh_sim: Any, worker: Any
) -> None:
    res = complete.delay(prompt="[[sim:error=spend]] hi", model="sonnet")
    rec = deadletter.get(dead_letter_of(res))
    assert rec is not None and rec.error_kind == "spend_limit" and len(rec.attempts) == 1
    assert pause.spend_paused("sonnet")
    # While paused, the group's tasks are dead-lettered without a call...
    other = complete.delay(prompt="fine", model="sonnet")
    assert "paused" in str(deadletter.get(dead_letter_of(other)))
    assert fresh_sim.stats()["messages"] == 1
    # ...other groups are not affected, and an operator lifts the pause, then replays.
    assert complete.delay(prompt="fine", model="haiku").get(timeout=20)["text"]
    result = CliRunner().invoke(main, ["limiter", "resume", "sonnet", "--json"])
    lifted = json.loads(result.output)
    assert lifted["group"] == "sonnet" and lifted["was_paused"] is True
    assert "spend_limit" in [p["kind"] for p in lifted["lifted"]]
    replayed = deadletter.replay_one(deadletter.dead_letter_id(other.id), complete.apply_async)
    assert replayed.get(timeout=20)["idempotency_key"] == other.id


def test_a_paused_group_stops_requests_routed_to_it(
    fast_retries: None, fresh_sim: Any, worker: Any
) -> None:
    # model="auto" from another client reaches the worker unrouted; the pause must be
    # checked on the group the router picks (a short question: Haiku), not the raw kwargs.
    pause.pause_spend("haiku", "test pause", 60)
    try:
        res = complete.app.send_task(
            "agentjobs.complete",
            kwargs={"prompt": "short question?", "model": "auto"},
            queue="claude.haiku",
        )
        assert "paused" in str(deadletter.get(dead_letter_of(res)))
        assert fresh_sim.stats()["messages"] == 0
    finally:
        pause.resume("haiku")


def test_replay_after_the_fault_is_removed(fast_retries: None, fresh_sim: Any, worker: Any) -> None:
    fresh_sim.configure(fault_529=1.0)
    try:
        results = [complete.delay(prompt=f"replay me {i}") for i in range(4)]
        ids = [dead_letter_of(r) for r in results]
    finally:
        fresh_sim.configure(fault_529=0.0)
    assert deadletter.count() == 4
    out = CliRunner().invoke(main, ["dlq", "replay", "--all", "--json", "--timeout", "30"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["counts"] == {"succeeded": 4} and report["remaining"] == 0
    for r, dl_id in zip(results, ids, strict=True):
        # The same key now has a result: the original task id resolves to it too.
        stored = idempotency.outcome(r.id)
        assert stored is not None and stored["result"]["idempotency_key"] == r.id
        assert deadletter.get(dl_id) is None


def make(key: str, created_at: float) -> deadletter.DeadLetter:
    return deadletter.DeadLetter(
        id=deadletter.dead_letter_id(key),
        created_at=created_at,
        request={"prompt": "p", "idempotency_key": key},
        error_class="BadRequestError",
        error_kind="bad_request",
        message="nope",
        status=400,
        reason="permanent",
        attempts=[],
        queue="claude.haiku",
        worker="w",
        task_id=key,
        idempotency_key=key,
    )


def test_retention_by_count_and_age(
    monkeypatch: pytest.MonkeyPatch, state_redis: redis.Redis
) -> None:
    monkeypatch.setenv("AGENTJOBS_DLQ_MAX_RECORDS", "5")
    monkeypatch.setenv("AGENTJOBS_DLQ_MAX_AGE_S", "100")
    reset_settings()
    try:
        now = 10_000.0
        for i in range(8):
            deadletter.add(make(f"k{i}", now + i), now=now + i)
        assert deadletter.count() == 5
        kept = {r.idempotency_key for r in deadletter.records()}
        assert kept == {"k3", "k4", "k5", "k6", "k7"}  # oldest dropped first
        deadletter.add(make("late", now + 150), now=now + 150)  # k3..k7 now older than 100 s
        assert [r.idempotency_key for r in deadletter.records()] == ["late"]
        assert 0 < state_redis.ttl(deadletter.record_key(deadletter.dead_letter_id("late"))) <= 100
    finally:
        monkeypatch.undo()
        reset_settings()


def test_a_replay_the_broker_refused_leaves_the_letter_as_it_was(
    state_redis: redis.Redis,
) -> None:
    """The send fails (no broker listens): the letter is still dead, not 'replaying' a
    task that was never sent, and a later replay goes through."""
    import time

    import kombu.exceptions
    from celery import Celery

    from agentjobs.contrib.testing import free_port

    deadletter.add(make("refused", time.time()))
    dl_id = deadletter.dead_letter_id("refused")
    nowhere = Celery("nowhere", broker=f"redis://127.0.0.1:{free_port()}/0")
    nowhere.conf.broker_connection_retry_on_startup = False

    def send(*, kwargs: dict[str, Any], task_id: str) -> Any:
        return nowhere.send_task("agentjobs.complete", kwargs=kwargs, task_id=task_id, retry=False)

    with pytest.raises(kombu.exceptions.OperationalError):
        deadletter.replay_one(dl_id, send)
    kept = deadletter.get(dl_id)
    assert kept is not None
    assert (kept.state, kept.replays, kept.replay_task_id) == ("dead", 0, None)
    sent: list[str] = []
    deadletter.replay_one(dl_id, lambda *, kwargs, task_id: sent.append(task_id))
    after = deadletter.get(dl_id)
    assert after is not None and after.state == "replaying" and after.replays == 1
    assert after.replay_task_id == sent[0]


def test_cli_list_show_export_purge(state_redis: redis.Redis, tmp_path: Any) -> None:
    import time

    for i in range(3):
        deadletter.add(make(f"c{i}", time.time() - 10 + i))
    runner = CliRunner()
    listed = json.loads(runner.invoke(main, ["dlq", "list", "--json"]).output)
    assert listed["total"] == 3
    assert [r["idempotency_key"] for r in listed["records"]] == ["c2", "c1", "c0"]
    assert "BadRequestError" in runner.invoke(main, ["dlq", "list"]).output
    dl_id = listed["records"][0]["id"]
    shown = json.loads(runner.invoke(main, ["dlq", "show", dl_id, "--json"]).output)
    assert shown["request"] == {"prompt": "p", "idempotency_key": "c2"}
    assert "idempotency key: c2" in runner.invoke(main, ["dlq", "show", dl_id]).output
    missing = runner.invoke(main, ["dlq", "show", "dl_nope"])
    assert missing.exit_code == 1 and "no dead letter" in missing.output
    path = tmp_path / "dead.jsonl"
    assert runner.invoke(main, ["dlq", "export", "-o", str(path)]).exit_code == 0
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["idempotency_key"] for r in lines] == ["c0", "c1", "c2"]
    arr = json.loads(runner.invoke(main, ["dlq", "export", "--json"]).output)
    assert len(arr) == 3
    purged = json.loads(runner.invoke(main, ["dlq", "purge", dl_id, "--json"]).output)
    assert purged == {"purged": 1, "remaining": 2}
    refused = runner.invoke(main, ["dlq", "purge"])
    assert refused.exit_code != 0 and "--all" in refused.output
    everything = runner.invoke(main, ["dlq", "purge", "--all", "--yes", "--json"])
    assert json.loads(everything.output) == {"purged": 2, "remaining": 0}

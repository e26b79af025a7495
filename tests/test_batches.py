"""The Message Batches lane end to end: real workers, the real SDK, the simulator's
batches endpoints, the state store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from agentjobs import complete
from agentjobs.cli import main
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import DeadLetteredError
from agentjobs.lanes import records, runner
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cost_usd
from agentjobs.reliability import deadletter
from agentjobs.settings import reset_settings


@pytest.fixture
def lane(monkeypatch: pytest.MonkeyPatch, fresh_sim: Any) -> Iterator[Any]:
    """Fast batch-lane settings: a batch once the oldest request waited 0.3 s, looked at
    every 0.05 s; the simulator ends a batch 0.3 s after it was created."""
    for name, value in {
        "AGENTJOBS_BATCH_MAX_AGE_S": "0.3",
        "AGENTJOBS_BATCH_TICK_S": "0.05",
        "AGENTJOBS_BATCH_POLL_MIN_S": "0.05",
        "AGENTJOBS_BATCH_POLL_MAX_S": "0.2",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    fresh_sim.configure(batch_processing_ms=300.0)
    yield fresh_sim
    reset_settings()


@pytest.fixture
def batching(worker: Any, lane: Any) -> Iterator[runner.Runner]:
    """The batcher thread of the in-process worker (as its worker_ready handler starts
    it in a real worker process)."""
    r = runner.start(worker)
    assert r is not None
    yield r
    r.stop.set()
    r.thread.join(10)


def test_batch_lane_results_through_async_results_at_half_price(
    batching: runner.Runner, lane: Any, state_redis: redis.Redis
) -> None:
    handles = [
        complete.delay(prompt=f"summarise item {i}", model="haiku", lane="batch", max_tokens=64)
        for i in range(12)
    ]
    results = [h.get(timeout=60) for h in handles]
    stats = lane.stats()
    assert stats["messages"] == 0  # no synchronous call was made for them
    assert 1 <= stats["batches"] <= 3
    assert stats["batch_requests"] == 12
    for h, res in zip(handles, results, strict=True):
        assert h.state == "SUCCESS"
        assert res["lane"] == "batch"
        usage = Usage.model_validate(res["usage"])
        full = cost_usd(res["model"], usage)
        assert res["cost_usd"] == pytest.approx(full / 2)
        assert res["cost_usd"] > 0
    assert sum(r["cost_usd"] for r in results) == pytest.approx(stats["batch_cost_usd"], abs=1e-5)
    over = records.overview()
    assert over["waiting_total"] == 0 and over["open"] == []
    assert over["stats"]["succeeded"] == 12
    assert over["stats"]["saved_usd"] == pytest.approx(sum(r["cost_usd"] for r in results))


def test_sync_lane_is_unchanged(worker: Any, lane: Any) -> None:
    res = complete.delay(prompt="hello", model="haiku", max_tokens=16).get(timeout=30)
    assert res["lane"] is None
    assert lane.stats()["messages"] == 1 and lane.stats()["batches"] == 0


def _dead_letter_of(handle: Any) -> deadletter.DeadLetter:
    """The dead letter that ended ``handle``'s task (its key is the task id)."""
    with pytest.raises(DeadLetteredError) as info:
        handle.get(timeout=60)
    dl_id = deadletter.dead_letter_id(handle.id)
    assert dl_id in str(info.value)
    rec = deadletter.get(dl_id)
    assert rec is not None
    return rec


def test_a_refused_entry_is_dead_lettered_with_its_batch_id(
    batching: runner.Runner, lane: Any
) -> None:
    good = [complete.delay(prompt=f"fine {i}", lane="batch", max_tokens=32) for i in range(3)]
    bad = complete.delay(prompt="refuse me [[sim:error=400]]", lane="batch", max_tokens=32)
    assert all(h.get(timeout=60)["lane"] == "batch" for h in good)
    rec = _dead_letter_of(bad)
    assert bad.state == "FAILURE"
    assert rec.error_class == "invalid_request_error" and rec.error_kind == "bad_request"
    assert rec.reason == "permanent error"
    extra = rec.model_dump()
    assert extra["batch_id"].startswith("msgbatch_") and extra["batch_id"] in rec.message
    # Each of the 4 requests went out in a batch once: the permanent error was not sent
    # again. (How many batches carried them depends on when the batcher's tick fell
    # between the four publishes, which a loaded machine moves.)
    assert lane.stats()["batch_requests"] == 4


def test_an_errored_entry_follows_the_retry_policy(
    batching: runner.Runner, lane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTJOBS_RETRY_MAX_ATTEMPTS", "3")
    reset_settings()
    h = complete.delay(prompt="flaky [[sim:batch=errored]]", lane="batch", max_tokens=32)
    rec = _dead_letter_of(h)
    assert rec.error_class == "api_error" and rec.reason == "retries used up"
    assert lane.stats()["batches"] == 3  # sent three times: the policy's attempts
    assert records.overview()["stats"]["retried"] == 2


def test_an_expired_entry_is_sent_once_more_then_dead_lettered(
    batching: runner.Runner, lane: Any
) -> None:
    h = complete.delay(prompt="slow [[sim:batch=expired]]", lane="batch", max_tokens=32)
    rec = _dead_letter_of(h)
    assert rec.error_kind == "expired" and rec.reason == "sent twice"
    assert lane.stats()["batches"] == 2
    assert records.overview()["stats"]["resubmitted"] == 1


def test_an_expired_share_is_resubmitted_and_answered(batching: runner.Runner, lane: Any) -> None:
    lane.configure(batch_expire_share=0.5)
    handles = [complete.delay(prompt=f"item {i}", lane="batch", max_tokens=16) for i in range(8)]
    wait_for(lambda: records.overview()["stats"].get("resubmitted", 0) >= 1, timeout=60)
    lane.configure(batch_expire_share=0.0)  # the second sending goes through
    assert all(h.get(timeout=60)["lane"] == "batch" for h in handles)
    stats = records.overview()["stats"]
    assert stats["resubmitted"] == 4 and stats["succeeded"] == 8
    assert lane.stats()["batch_results"]["expired"] == 4


def test_cli_submit_on_the_batch_lane_and_batches_list(
    batching: runner.Runner, lane: Any, tmp_path: Any
) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(f'{{"prompt": "line {i}", "max_tokens": 16}}\n' for i in range(5)))
    out = tmp_path / "out.jsonl"
    ran = CliRunner().invoke(
        main, ["submit", str(jobs), "--lane", "batch", "-o", str(out), "--no-progress"]
    )
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["result"]["lane"] for x in lines] == ["batch"] * 5
    assert lane.stats()["messages"] == 0
    listed = CliRunner().invoke(main, ["batches", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    got = json.loads(listed.output)
    assert got["waiting_total"] == 0 and got["stats"]["succeeded"] == 5
    text = CliRunner().invoke(main, ["batches", "list"]).output
    assert "waiting: none" in text and "succeeded 5" in text


def test_stats_shows_the_lane(batching: runner.Runner, lane: Any) -> None:
    lane.configure(batch_processing_ms=60_000.0)  # open long enough to be seen
    handles = [complete.delay(prompt=f"s {i}", lane="batch", max_tokens=16) for i in range(3)]
    wait_for(lambda: records.overview()["open_by_state"] == {"in_progress": 1}, timeout=30)
    ran = CliRunner().invoke(main, ["stats", "--json"])
    assert ran.exit_code == 0, ran.output
    got = json.loads(ran.output)["live"]["batch_lane"]
    assert got["open_by_state"] == {"in_progress": 1} and got["waiting"] == 0
    text = CliRunner().invoke(main, ["stats"]).output
    assert "batch lane: 0 waiting" in text and "in_progress=1" in text
    from prometheus_client import generate_latest

    from agentjobs import app
    from agentjobs.ops.exporter import registry

    scraped = generate_latest(registry(app)).decode()
    assert 'agentjobs_batches_open{state="in_progress"} 1.0' in scraped
    assert 'agentjobs_batch_requests_waiting{group="haiku"} 0.0' in scraped
    assert all(h.state == "STARTED" for h in handles)


def test_a_batcher_that_lost_its_lock_stops_where_it_is(worker: Any, lane: Any) -> None:
    from agentjobs import app
    from agentjobs.lanes import batcher

    handles = [complete.delay(prompt=f"k {i}", lane="batch", max_tokens=16) for i in range(3)]
    wait_for(lambda: records.overview()["waiting_total"] == 3, timeout=30)
    wait_for(lambda: records.overview()["oldest_age_s"] >= 0.3, timeout=30)
    done = batcher.tick(app, keep=lambda: False)  # the lock lapsed: no create
    assert done.submitted == 0 and lane.stats()["batches"] == 0
    assert batcher.tick(app).submitted == 1 and lane.stats()["batches"] == 1
    assert records.overview()["waiting_total"] == 0
    assert all(h.state == "STARTED" for h in handles)


def test_the_budget_is_held_while_requests_wait_and_settled_from_real_usage(
    batching: runner.Runner, lane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentjobs.spend import budget, cost

    monkeypatch.setenv("AGENTJOBS_BUDGET_DAILY_USD", "100")
    reset_settings()
    lane.configure(batch_processing_ms=1500.0)
    handles = [complete.delay(prompt=f"b {i}", lane="batch", max_tokens=64) for i in range(3)]
    wait_for(lambda: records.overview()["open_by_state"] == {"in_progress": 1}, timeout=30)
    held = budget.in_flight_usd()
    assert held > 0  # an upper bound of the three, held while they wait
    results = [h.get(timeout=60) for h in handles]
    assert budget.in_flight_usd() == 0
    assert sum(r["cost_usd"] for r in results) < held
    day = cost.day_totals(cost.today())
    assert day.totals["usd"] == pytest.approx(sum(r["cost_usd"] for r in results))

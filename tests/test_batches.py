"""The Message Batches lane end to end: real workers, the real SDK, the simulator's
batches endpoints, the state store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs import complete
from agentjobs.lanes import records, runner
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cost_usd
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
    assert sum(r["cost_usd"] for r in results) == pytest.approx(stats["batch_cost_usd"])
    over = records.overview()
    assert over["waiting_total"] == 0 and over["open"] == []
    assert over["stats"]["succeeded"] == 12
    assert over["stats"]["saved_usd"] == pytest.approx(sum(r["cost_usd"] for r in results))


def test_sync_lane_is_unchanged(worker: Any, lane: Any) -> None:
    res = complete.delay(prompt="hello", model="haiku", max_tokens=16).get(timeout=30)
    assert res["lane"] is None
    assert lane.stats()["messages"] == 1 and lane.stats()["batches"] == 0

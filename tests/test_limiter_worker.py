"""The limiter in the worker flow: real Celery worker, real Redis, the simulator over HTTP."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import in_process_worker

from agentjobs.limiter.admission import api_key_fingerprint, get_limiter
from agentjobs.settings import reset_settings
from agentjobs.worker import tasks
from harness.drill import sim_hash


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set AGENTJOBS_* variables for one test; settings are re-read."""

    def apply(**env: object) -> None:
        for name, value in env.items():
            monkeypatch.setenv(f"AGENTJOBS_{name.upper()}", str(value))
        reset_settings()

    yield apply
    monkeypatch.undo()
    reset_settings()


@pytest.fixture(autouse=True)
def _restore_sim_config(sim: Any) -> Iterator[None]:
    """Tests here tighten the session simulator's limits (``fresh_sim`` resets only its
    counters and buckets): put them back, or later test files run into 429s."""
    before = dataclasses.asdict(sim.config)
    yield
    after = dataclasses.asdict(sim.config)
    changed = {name: value for name, value in before.items() if after[name] != value}
    if changed:
        sim.configure(**changed)


def submit(n: int, model: str = "haiku", **kw: Any) -> list[Any]:
    return [
        tasks.complete.delay(prompt=f"{model} question {i}", model=model, **kw) for i in range(n)
    ]


def test_bursts_are_spread_without_429(
    fresh_sim: Any, state_redis: redis.Redis, purge_queues: None, limits: Any
) -> None:
    # Server and limiter agree: 1,200 RPM with a 0.5 s bucket (10 requests at once).
    fresh_sim.configure(haiku_rpm=1200, burst_s=0.5)
    limits(limit_haiku_rpm=1200, limiter_burst_s=0.5)
    t0 = time.monotonic()
    with in_process_worker(("claude.haiku",), concurrency=8):
        results = [r.get(timeout=30) for r in submit(40)]
    elapsed = time.monotonic() - t0
    stats = fresh_sim.stats(hashes=True)
    assert stats["rate_limited"] == 0
    # Each question answered once, counted by its own hash: the session simulator is
    # shared by the whole run, and a request of another test's leftover thread is not
    # this test's to count.
    answered = [stats["ok_by_hash"].get(sim_hash(f"haiku question {i}"), 0) for i in range(40)]
    assert answered == [1] * 40
    assert elapsed >= (40 - 10) / 20  # the limit was respected, not just lucky
    waits = sorted(r["limiter_wait_ms"] for r in results)
    assert waits[0] < 50 and waits[-1] > 100  # waiting is visible per task
    snap = get_limiter().snapshot("haiku")
    assert snap["admitted"] == 40 and snap["rate_limited"] == 0


def test_server_with_less_room_wins(
    fresh_sim: Any, state_redis: redis.Redis, purge_queues: None, limits: Any
) -> None:
    # We are configured for 6,000 RPM, the key really has 600 (a 1 s bucket of 10):
    # the -limit headers and the first 429s pull the whole group back.
    fresh_sim.configure(haiku_rpm=600, burst_s=1.0)
    limits(limit_haiku_rpm=6000, limiter_burst_s=1.0)
    with in_process_worker(("claude.haiku",), concurrency=8):
        results = [r.get(timeout=60) for r in submit(40)]
    assert len(results) == 40
    stats = fresh_sim.stats()
    assert stats["ok"] == 40
    assert stats["rate_limited"] <= 8  # at most the calls in flight before the first answer
    snap = get_limiter().snapshot("haiku")
    assert snap["dimensions"]["rpm"]["server_limit"] == 600


def test_long_wait_goes_back_to_the_broker_and_spares_other_groups(
    fresh_sim: Any, state_redis: redis.Redis, purge_queues: None, limits: Any
) -> None:
    # Sonnet: one request per 2 s; any wait over 0.3 s is deferred through the broker.
    # One error attempt allowed: a deferral must not use it up.
    limits(
        limit_sonnet_rpm=30,
        limiter_burst_s=2.0,
        limiter_max_sleep_s=0.3,
        retry_max_attempts=1,
    )
    with in_process_worker(("claude.haiku", "claude.sonnet"), concurrency=2):
        sonnet = submit(3, "sonnet")  # haiku is queued behind the saturated sonnet tasks
        haiku = [r.get(timeout=20) for r in submit(6, "haiku")]
        sonnet_results = [r.get(timeout=30) for r in sonnet]
    # The two threads were never pinned by sonnet's 2-4 s waits: no task spent more than
    # the 0.3 s bound in the limiter (how fast haiku then ran is the machine's load).
    assert all(r["limiter_wait_ms"] < 300 for r in haiku + sonnet_results)
    assert [r["model"] for r in sonnet_results] == ["claude-sonnet-4-6"] * 3
    snap = get_limiter().snapshot("sonnet")
    assert snap["admitted"] == 3 and snap["deferred"] >= 2
    assert fresh_sim.stats()["rate_limited"] == 0


def test_disabled_limiter_reserves_nothing(
    fresh_sim: Any, state_redis: redis.Redis, purge_queues: None, limits: Any
) -> None:
    limits(limiter_enabled="false")
    with in_process_worker(("claude.haiku",), concurrency=2):
        result = submit(1)[0].get(timeout=20)
    assert result["limiter_wait_ms"] == 0
    assert not state_redis.keys(f"*{api_key_fingerprint()}*")


def test_cli_shows_pauses_and_resumes(state_redis: redis.Redis) -> None:
    from click.testing import CliRunner

    from agentjobs.cli import main

    runner = CliRunner()
    assert runner.invoke(main, ["limiter", "pause", "opus", "30"]).exit_code == 0
    out = runner.invoke(main, ["limiter", "show", "opus", "--json"])
    assert out.exit_code == 0, out.output
    (snap,) = json.loads(out.output)
    assert snap["group"] == "opus" and 29 < snap["paused_s"] <= 30
    assert snap["key"] == api_key_fingerprint()
    assert runner.invoke(main, ["limiter", "resume", "opus"]).exit_code == 0
    table = runner.invoke(main, ["limiter"])
    assert table.exit_code == 0 and "paused 0.0s" in table.output and "sonnet" in table.output
    bad = runner.invoke(main, ["limiter", "pause", "gpt", "3"])
    assert bad.exit_code == 2 and "gpt" in bad.output

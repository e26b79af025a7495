"""The metrics layer against a real Redis: exact sums, minute windows, percentiles,
live gauges, and queue depth read from the broker (Redis and RabbitMQ)."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest
import redis

from agentjobs import app
from agentjobs.contrib.testing import wait_for
from agentjobs.ops import depth, metrics
from agentjobs.ops.signals import failure_class
from agentjobs.settings import get_settings


def test_updates_from_many_writers_sum_exactly(state_redis: redis.Redis) -> None:
    metrics.reset()
    now = 1_800_000_000.0
    for i in range(50):
        b = metrics.Update()
        b.inc("tasks", ("claude.haiku", "claude-haiku-4-5", "succeeded"))
        b.inc("cost_usd", ("claude.haiku", "claude-haiku-4-5"), 0.0000123)
        b.observe("call_seconds", ("claude.haiku", "claude-haiku-4-5"), 0.3 if i < 49 else 25)
        b.commit(now=now + i * 10)  # spread over ~9 minutes
    total = metrics.read_total()
    assert total.sum("tasks", outcome="succeeded") == 50
    assert total.sum("cost_usd") == pytest.approx(50 * 0.0000123, abs=1e-12)
    assert total.sum("call_seconds") == 50
    assert total.hist_sum("call_seconds") == pytest.approx(49 * 0.3 + 25)
    # p50 inside the 0.25-0.5 bucket, p99 in the 20-30 bucket
    assert 0.25 < total.quantile("call_seconds", 0.5) <= 0.5  # type: ignore[operator]
    assert 20 < total.quantile("call_seconds", 0.99) <= 30  # type: ignore[operator]
    # the last 2 minutes only: events at now+420 .. now+490
    last = metrics.read_window(2, now=now + 490)
    minute = int((now + 490) // 60)
    expected = sum(1 for i in range(50) if int((now + i * 10) // 60) >= minute - 1)
    assert last.sum("tasks") == expected and 0 < expected < 50
    assert total.by("tasks", "outcome") == {"succeeded": 50}


def test_quantile_matches_prometheus_rule() -> None:
    counts = [0] * len(metrics.BUCKETS_S)
    counts[metrics.bucket_index(1.5)] = 10  # ten observations in (1, 2.5]
    assert metrics.quantile(counts, 0.5) == pytest.approx(1.75)
    assert metrics.quantile([0] * len(metrics.BUCKETS_S), 0.5) is None
    counts = [0] * len(metrics.BUCKETS_S)
    counts[-1] = 3  # all above the last finite bound
    assert metrics.quantile(counts, 0.99) == metrics.BUCKETS_S[-2]


def test_bad_labels_are_refused() -> None:
    with pytest.raises(ValueError):
        metrics.Update().inc("tasks", ("claude.haiku",))
    with pytest.raises(ValueError):
        metrics.Update().observe("tasks", ("a", "b", "c"), 1.0)


def test_redis_down_never_fails_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = redis.Redis(port=port, socket_connect_timeout=0.2)
    b = metrics.Update()
    b.inc("tasks_started", ("claude.haiku",))
    b.commit(client=dead)
    assert "lost 1 increments" in caplog.text


def test_live_gauges_age_out(state_redis: redis.Redis) -> None:
    metrics.reset()
    metrics.call_started("a", "claude.haiku", "claude-haiku-4-5", now=1000.0)
    metrics.call_started("b", "claude.haiku", "claude-haiku-4-5", now=1000.0)
    assert metrics.calls_in_flight(now=1001.0) == {("claude.haiku", "claude-haiku-4-5"): 2}
    metrics.call_finished("a", "claude.haiku", "claude-haiku-4-5")
    assert metrics.calls_in_flight(now=1001.0) == {("claude.haiku", "claude-haiku-4-5"): 1}
    assert metrics.calls_in_flight(now=100_000.0) == {}  # a killed worker's call is dropped
    # A long answer (64,000 tokens may take 6,525 s at the defaults) counts as long as it
    # may run, and no longer; a call of the default max_tokens goes stale long before.
    s = get_settings()
    metrics.call_started("long", "claude.opus", "claude-opus-4-6", now=1000.0, max_tokens=64_000)
    metrics.call_started("short", "claude.opus", "claude-opus-4-6", now=1000.0)
    long_end = 1000.0 + s.call_timeout_s(64_000) + 60
    short_end = 1000.0 + s.call_timeout_s(s.default_max_tokens) + 60
    assert metrics.calls_in_flight(now=short_end - 1) == {("claude.opus", "claude-opus-4-6"): 2}
    assert metrics.calls_in_flight(now=short_end + 1) == {("claude.opus", "claude-opus-4-6"): 1}
    assert metrics.calls_in_flight(now=long_end - 1) == {("claude.opus", "claude-opus-4-6"): 1}
    assert metrics.calls_in_flight(now=long_end + 1) == {}
    metrics.worker_seen("w1@h", ["claude.haiku"], now=1000.0)
    metrics.worker_seen("w2@h", ["claude.haiku", "claude.sonnet"], now=1000.0)
    assert metrics.workers_alive(["claude.haiku", "claude.sonnet", "claude.opus"], now=1010.0) == {
        "claude.haiku": 2,
        "claude.sonnet": 1,
        "claude.opus": 0,
    }
    metrics.worker_gone("w2@h", ["claude.haiku", "claude.sonnet"])
    assert metrics.workers_alive(["claude.haiku"], now=1010.0) == {"claude.haiku": 1}
    assert metrics.workers_alive(["claude.haiku"], now=1000.0 + 60) == {"claude.haiku": 0}


def test_failure_classes() -> None:
    from celery.exceptions import Retry

    from agentjobs.errors import DeadLetteredError, RateLimitedError

    assert failure_class(RateLimitedError("wait", 2.0)) == "rate_limited"
    assert failure_class(Retry()) == "deferred"  # a retry without a failure behind it
    try:
        try:
            raise RateLimitedError("429")
        except RateLimitedError as exc:
            raise DeadLetteredError("gave up", "dl_x") from exc
    except DeadLetteredError as dead:
        assert failure_class(dead) == "rate_limited"


def _backlog(n: int, model: str, **options: Any) -> None:
    from agentjobs import complete

    for i in range(n):
        complete.apply_async(kwargs={"prompt": f"backlog {i}", "model": model}, **options)


def test_queue_depth_matches_redis_broker_count(redis_server: Any, purge_queues: None) -> None:
    _backlog(7, model="haiku")
    _backlog(3, model="sonnet")
    _backlog(2, model="haiku", priority=6)  # lands on a priority sub-list
    broker = redis.Redis.from_url(os.environ["AGENTJOBS_BROKER_URL"])
    own = {
        q: sum(broker.llen(k) for k in broker.keys(q + "*"))
        for q in ("claude.haiku", "claude.sonnet", "claude.opus")
    }
    assert own == {"claude.haiku": 9, "claude.sonnet": 3, "claude.opus": 0}
    assert depth.queue_depths(app) == {**own, "agentjobs.tools": 0}  # watched, empty


def _rabbit_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.mark.rabbitmq
def test_queue_depth_matches_rabbitmq_count() -> None:
    if not _rabbit_up():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not running")
        pytest.skip("RabbitMQ is not running")
    import uuid

    from celery import Celery
    from kombu import Connection, Queue

    url = "amqp://guest:guest@127.0.0.1:5672//"
    name = f"agentjobs-depth-test-{uuid.uuid4().hex[:8]}"
    app = Celery("depthtest", broker=url)
    with Connection(url) as conn:
        queue = Queue(name, channel=conn.default_channel, auto_delete=False)
        queue.declare()
        producer = conn.Producer()
        for i in range(5):
            producer.publish({"i": i}, routing_key=name)
        try:
            # publishes are asynchronous: wait until the broker has all five
            own = wait_for(
                lambda: (n := queue.queue_declare(passive=True).message_count) == 5 and n,
                timeout=10,
                what="five messages in RabbitMQ",
            )
            assert depth.queue_depths(app, [name, name + "-missing"]) == {
                name: own,
                name + "-missing": 0,
            }
        finally:
            queue.delete()

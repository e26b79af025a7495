"""End to end: worker processes, the simulator over HTTP, Redis or RabbitMQ as broker.

Every test here runs twice, once per broker; the RabbitMQ half gets a vhost of its own
(skipped when RabbitMQ is down, failing when CI=true). The result backend and the state
store are the session's private Redis either way.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
import redis
from kombu import Connection

from agentjobs import app, complete
from agentjobs.api.client import sdk_kwargs
from agentjobs.contrib.testing import (
    RabbitVhost,
    RedisServer,
    WorkerProcess,
    publish_pickled,
    rabbitmq_up,
    wait_for,
    worker_processes,
)
from agentjobs.messages.request import parse_request

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _clean_state_store(state_redis: redis.Redis) -> None:
    """Each test starts with an empty state store: no limiter pause, budget or cache left
    by an earlier test in the session."""


@pytest.fixture(
    scope="module", params=["redis", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]
)
def broker_url(request: pytest.FixtureRequest, redis_server: RedisServer) -> Iterator[str]:
    if request.param == "redis":
        yield str(app.conf.broker_url)
        return
    if not rabbitmq_up():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not running on 127.0.0.1:5672 (CI must test it)")
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    vhost = RabbitVhost().create()
    if vhost.shared:
        _purge(vhost.url)
    yield vhost.url
    if vhost.shared:
        _purge(vhost.url)
    vhost.delete()


def _purge(url: str) -> None:
    with Connection(url) as conn:
        channel = conn.channel()
        for family in ("haiku", "sonnet", "opus"):
            app.amqp.queues[f"claude.{family}"].bind(channel).purge()


@pytest.fixture(scope="module")
def producer(broker_url: str) -> Iterator[Connection]:
    """The connection tasks are sent on (the test app's own broker is the private Redis)."""
    with Connection(broker_url) as conn:
        yield conn


@pytest.fixture(scope="module")
def workers(broker_url: str, sim: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One Haiku and one Sonnet worker process, started together."""
    log_dir = str(tmp_path_factory.mktemp("workers"))
    # fast retries: the retry test needs three attempts, not three backoffs
    env = {
        "AGENTJOBS_BROKER_URL": broker_url,
        "AGENTJOBS_RETRY_MAX_ATTEMPTS": "3",
        "AGENTJOBS_RETRY_BACKOFF_BASE_S": "0.01",
        "AGENTJOBS_RETRY_BACKOFF_MAX_S": "0.05",
    }
    procs = [
        WorkerProcess(
            f, env, args=("-c", "4"), name=f"{f}-e2e-{uuid.uuid4().hex[:6]}", log_dir=log_dir
        )
        for f in ("haiku", "sonnet")
    ]
    with worker_processes(*procs):
        yield {p.family: p for p in procs}


def send(producer: Connection, **kwargs: Any) -> Any:
    return complete.apply_async(kwargs=kwargs, connection=producer)


def direct_answer(sim: Any, kwargs: dict[str, Any]) -> anthropic.types.Message:
    """What the simulator answers the same request when asked without agentjobs."""
    params = parse_request(kwargs).api_params()
    client = anthropic.Anthropic(base_url=sim.base_url, api_key="sk-ant-test", max_retries=0)
    try:
        return client.messages.create(**sdk_kwargs(params))
    finally:
        client.close()


def test_results_carry_the_simulators_answer_and_families_never_cross(
    fresh_sim: Any, workers: dict[str, WorkerProcess], producer: Connection
) -> None:
    run = uuid.uuid4().hex[:8]
    requests = []
    for i in range(16):
        model = ["haiku", "sonnet", "claude-haiku-4-5-20251001", "claude-sonnet-4-5"][i % 4]
        kw: dict[str, Any] = {"prompt": f"e2e {run} question {i}", "model": model}
        if i % 3 == 0:
            kw.update(system="Be brief.", max_tokens=40, temperature=0.5)
        if i % 5 == 0:
            kw = {"messages": [{"role": "user", "content": f"e2e {run} msg {i}"}], "model": model}
        requests.append(kw)
    handles = [send(producer, **kw) for kw in requests]
    results = [h.get(timeout=30) for h in handles]

    assert fresh_sim.stats()["messages"] == len(requests)  # one call per task, no more
    for kw, handle, result in zip(requests, handles, results, strict=True):
        family = parse_request(kw).family
        assert result["queue"] == f"claude.{family}"
        assert result["worker"].startswith(workers[family].name + "@")
        assert result["task_id"] == handle.id and result["idempotency_key"] == handle.id
        assert result["attempts"] == 1 and result["cached"] is False

        expected = direct_answer(fresh_sim, kw)
        assert result["model"] == expected.model == parse_request(kw).model
        assert result["text"] == expected.content[0].text  # type: ignore[union-attr]
        assert result["stop_reason"] == expected.stop_reason
        assert result["usage"]["input_tokens"] == expected.usage.input_tokens
        assert result["usage"]["output_tokens"] == expected.usage.output_tokens
        assert result["cost_usd"] > 0 and result["latency_ms"] > 0


def test_a_result_expires_after_its_ttl_with_plain_celery_worker(
    fresh_sim: Any, broker_url: str, producer: Connection, tmp_path: Path
) -> None:
    """Also the documented equivalence: `celery -A agentjobs worker -Q claude.opus -P threads`."""
    opus = WorkerProcess(
        "opus",
        {"AGENTJOBS_BROKER_URL": broker_url, "AGENTJOBS_RESULT_TTL_S": "2"},
        args=("-c", "2"),
        log_dir=str(tmp_path),
        plain_celery=True,
    )
    backend = redis.Redis.from_url(app.conf.result_backend)
    with worker_processes(opus):
        handle = send(producer, prompt=f"short-lived {uuid.uuid4()}", model="opus")
        result = handle.get(timeout=30)
        key = app.backend.get_key_for_task(handle.id)
        stored, ttl_ms = backend.pipeline().get(key).pttl(key).execute()
        assert 0 < ttl_ms <= 2000  # stored with the worker's 2 s expiry
        assert b"short-lived" not in stored  # the prompt is not copied into results
        assert result["queue"] == "claude.opus"
        assert result["worker"].startswith(opus.name + "@")
        wait_for(lambda: not backend.exists(key), timeout=5, what="result key to expire")
    backend.close()


def test_a_pickled_message_is_rejected_unread_and_the_worker_carries_on(
    fresh_sim: Any, workers: dict[str, WorkerProcess], producer: Connection, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    task_id = str(uuid.uuid4())
    publish_pickled(producer, app, marker, task_id)
    # Then a good task on the same queue: the worker takes messages in order.
    good = send(producer, prompt=f"after the pickle {task_id}", model="haiku").get(timeout=30)
    assert good["queue"] == "claude.haiku"

    log = wait_for(
        lambda: (t := workers["haiku"].log()) and "Refusing to deserialize" in t and t,
        timeout=10,
        what="the refusal in the worker log",
    )
    assert "application/x-python-serialize" in log
    assert not marker.exists()  # never unpickled
    stats = fresh_sim.stats()
    assert stats["messages"] == 1  # only the good task called Claude
    assert app.AsyncResult(task_id).state == "PENDING"  # nothing ran, nothing stored
    assert workers["haiku"].proc is not None and workers["haiku"].proc.poll() is None
    # Rejected for good, not requeued: the queue is empty again.
    assert queue_depth(producer, "claude.haiku") == 0


def queue_depth(conn: Connection, name: str) -> int:
    if conn.transport_cls == "redis":
        client = redis.Redis.from_url(conn.as_uri(include_password=True))
        try:
            return int(client.llen(name))
        finally:
            client.close()
    with conn.clone() as fresh:
        return int(fresh.default_channel.queue_declare(name, passive=True).message_count)


def test_a_retried_task_goes_back_through_the_broker(
    fresh_sim: Any, workers: dict[str, WorkerProcess], producer: Connection
) -> None:
    """Every attempt is a new message on the same queue (retry() republishes)."""
    handle = send(producer, prompt=f"always overloaded {uuid.uuid4()} [[sim:fault=529]]")
    with pytest.raises(Exception, match=r"after 3 attempt\(s\)") as info:
        handle.get(timeout=30)
    assert type(info.value).__name__ == "DeadLetteredError"
    assert fresh_sim.stats()["by_status"] == {"529": 3}
    assert "Retry in" in workers["haiku"].log()


def test_a_killed_workers_task_is_redelivered_and_finished(
    fresh_sim: Any,
    broker_url: str,
    producer: Connection,
    tmp_path: Path,
) -> None:
    """Late acks on RabbitMQ: the unacked message returns as soon as the worker dies."""
    if not broker_url.startswith("amqp"):
        pytest.skip("on Redis redelivery waits for the visibility timeout: test_reliability.py")
    env = {"AGENTJOBS_BROKER_URL": broker_url, "AGENTJOBS_IDEMPOTENCY_LEASE_S": "2"}
    first = WorkerProcess("opus", env, args=("-c", "2"), name="opus-doomed", log_dir=str(tmp_path))
    second = WorkerProcess("opus", env, args=("-c", "2"), name="opus-heir", log_dir=str(tmp_path))
    with worker_processes(first):
        handle = send(producer, prompt=f"slow {uuid.uuid4()} [[sim:latency_ms=2500]]", model="opus")
        wait_for(lambda: fresh_sim.stats()["in_flight"] == 1, timeout=20, what="the call")
        first.kill()
    with worker_processes(second):
        result = handle.get(timeout=40)
    assert result["worker"].startswith("opus-heir@")
    assert fresh_sim.stats()["messages"] == 2  # the killed call, then the heir's

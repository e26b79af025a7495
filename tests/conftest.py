"""Shared fixtures: a private Redis per test session, the simulator, real workers.

The private redis-server (a free port, no persistence) keeps parallel test runs from
sharing queues. DB 0 is the broker, DB 1 the state store, DB 2 the result backend.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from agentjobs.contrib.testing import RedisServer

_SERVER: RedisServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _SERVER
    _SERVER = RedisServer().start()
    os.environ["AGENTJOBS_BROKER_URL"] = f"{_SERVER.url}/0"
    os.environ["AGENTJOBS_REDIS_URL"] = f"{_SERVER.url}/1"
    os.environ["AGENTJOBS_RESULT_BACKEND"] = f"{_SERVER.url}/2"
    # Tests never reach the real API, whatever the developer's shell has.
    os.environ.pop("ANTHROPIC_API_KEY", None)
    os.environ.pop("ANTHROPIC_AUTH_TOKEN", None)
    os.environ.pop("ANTHROPIC_BASE_URL", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    # AsyncResults unsubscribe from the result backend when collected: collect them while
    # the private Redis still runs, or each one prints a reconnect error at exit.
    gc.collect()
    if _SERVER is not None:
        _SERVER.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    assert _SERVER is not None
    return _SERVER


@pytest.fixture
def state_redis(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """The state store (DB 1), empty at the start of the test."""
    client = redis.Redis.from_url(f"{redis_server.url}/1")
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def sim() -> Iterator[Any]:
    """The simulator in this process on a free port, zero latency; the SDK points at it."""
    from agentjobs.api import client
    from agentjobs.simulator import SimConfig, run_in_thread

    server = run_in_thread(SimConfig(latency_median_ms=0), host="127.0.0.1", port=0)
    os.environ["ANTHROPIC_BASE_URL"] = server.base_url
    os.environ["ANTHROPIC_API_KEY"] = "sk-ant-test"
    client.reset_client()
    yield server
    server.stop()
    os.environ.pop("ANTHROPIC_BASE_URL", None)
    os.environ.pop("ANTHROPIC_API_KEY", None)
    client.reset_client()


@pytest.fixture
def fresh_sim(sim: Any) -> Any:
    """The session simulator with counters, buckets and prompt cache reset."""
    sim.reset()
    return sim


@pytest.fixture
def purge_queues() -> Iterator[None]:
    """Empty the three claude.* queues before and after the test."""
    purge_all()
    yield
    purge_all()


def purge_all() -> None:
    # Not app.control.purge(): that empties only the queues this process has selected to
    # consume from (the default queue alone, until a worker selects more).
    from agentjobs import app, catalog

    with app.connection_for_write() as conn:
        for family in catalog.FAMILIES:
            app.amqp.queues[catalog.queue_for(family)].bind(conn.default_channel).purge()


@contextlib.contextmanager
def in_process_worker(
    queues: tuple[str, ...] = ("claude.haiku", "claude.sonnet", "claude.opus"),
    concurrency: int = 8,
    hostname: str | None = None,
) -> Iterator[Any]:
    """A real Celery worker (threads pool) running inside the test process."""
    from celery.contrib.testing.worker import start_worker

    from agentjobs import app

    with start_worker(
        app,
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=list(queues),
        hostname=hostname,
        shutdown_timeout=30.0,
    ) as worker:
        yield worker


@pytest.fixture
def worker(sim: Any, purge_queues: None) -> Iterator[Any]:
    """An in-process worker on all three queues, against the simulator."""
    with in_process_worker() as w:
        yield w

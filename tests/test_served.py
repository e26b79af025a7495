"""agentjobs' background threads (the submit ledger's sweeper, the batch lane's batcher,
the session sweep) start on a worker that consumes one of agentjobs' queues, and not on
a project's worker of its own queues (``agentjobs.install``; ``ops/served.py``).

Real in-process workers of a project's app on the private Redis; ``worker_ready`` is
sent as ``celery worker`` sends it when its consumer is ready (Celery's test worker
sends only its own signal).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, signals

import agentjobs
from agentjobs.agents import retention, sweep
from agentjobs.contrib.pytest_plugin import PrivateRedis, in_process_worker
from agentjobs.contrib.testing import wait_for
from agentjobs.lanes import runner
from agentjobs.reliability import sweeper
from agentjobs.reliability.worker_thread import WorkerThread
from agentjobs.worker import hosts
from agentjobs.worker.app import app as own_app

OWN_QUEUE = "served.default"


@pytest.fixture
def project_app(agentjobs_redis: PrivateRedis, state_redis: redis.Redis) -> Iterator[Celery]:
    """A project's app on its own broker and backend (DBs 3 and 4), agentjobs installed."""
    for db in (3, 4):
        agentjobs_redis.client(db).flushdb()
    app = Celery("served", set_as_current=False)
    app.conf.update(
        broker_url=f"{agentjobs_redis.url}/3",
        result_backend=f"{agentjobs_redis.url}/4",
        task_default_queue=OWN_QUEUE,
    )
    agentjobs.install(app)

    @app.task(name="served.add", shared=False)  # this app alone: one made per test
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    hosts.remove(app)
    own_app.set_current()


def _ready_and_started(worker: Any) -> dict[str, bool]:
    """Send worker_ready as a worker process does; which of the threads started."""
    signals.worker_ready.send(sender=worker.consumer)
    threads = {
        "ledger sweeper": sweeper._sweepers.get(id(worker)),
        "batch lane": runner._runners.get(id(worker)),
        "session sweep": sweep._sweeps.get(id(worker)),
        "session prune": retention._prunes.get(id(worker)),
    }
    for thread in threads.values():  # stopped at once: the test looks only at the start
        if thread is not None:
            thread.stop.set()
    return {name: thread is not None for name, thread in threads.items()}


def test_a_project_worker_of_its_own_queue_starts_none_of_agentjobs_threads(
    project_app: Celery,
) -> None:
    with in_process_worker(queues=[OWN_QUEUE], app=project_app, concurrency=1) as worker:
        started = _ready_and_started(worker)
        assert project_app.tasks["served.add"].delay(2, 3).get(timeout=30) == 5
    assert not any(started.values()), started


@pytest.mark.parametrize("queue", ["claude.haiku", "agentjobs.tools"])
def test_a_worker_of_agentjobs_queues_starts_them(
    project_app: Celery, sim: Any, queue: str
) -> None:
    with in_process_worker(queues=[OWN_QUEUE, queue], app=project_app, concurrency=1) as w:
        started = _ready_and_started(w)
    assert started == {
        "ledger sweeper": True,
        "batch lane": True,
        "session sweep": True,
        "session prune": True,
    }


def test_a_workers_thread_ends_soon_after_its_worker_however_long_its_interval(
    project_app: Celery,
) -> None:
    """A round an hour apart (the session prune's) must not keep the thread of an
    embedded worker, a test suite's, alive for the hour after the worker stopped."""

    class Hourly(WorkerThread):
        name = "agentjobs-test-hourly"

        def interval(self) -> float:
            return 3600.0

        def tick(self) -> None:
            raise AssertionError("no round comes within the hour")

    with in_process_worker(queues=[OWN_QUEUE], app=project_app, concurrency=1) as worker:
        hourly = Hourly(worker, project_app)
        hourly.thread.start()
        assert hourly.thread.is_alive()
    wait_for(lambda: not hourly.thread.is_alive(), timeout=30, what="the thread's end")

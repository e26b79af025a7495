"""agentjobs' pytest plugin: fixtures for testing an app that sends Claude calls as tasks.

Installing agentjobs registers this module with pytest (the ``pytest11`` entry point
``agentjobs``). It acts only when a test asks for one of its fixtures: loading it
reads and sets no environment variable, starts nothing, and imports neither Celery,
Redis nor the simulator (the imports sit inside the fixtures for that reason), so a
test suite that does not use it runs as before. docs/testing.md shows the fixtures in
use; in short:

- ``agentjobs_redis`` (session): a private ``redis-server`` on a free port, with
  agentjobs (its settings and its Celery app) pointed at it: broker DB 0, state store
  DB 1, results DB 2.
- ``agentjobs_state``: a client of the state store, emptied before the test.
- ``agentjobs_sim_server`` (session): the simulator on a thread, zero latency, with
  agentjobs' API client pointed at it; ``agentjobs_sim``: the same simulator reset for
  the test, its settings put back after it.
- ``agentjobs_worker``: a real Celery worker in the test process, consuming every
  ``claude.*`` queue (``@pytest.mark.agentjobs_worker(queues=[...], concurrency=N)``
  chooses), with those queues emptied before and after.
- ``agentjobs_app`` (session): the Celery app the other fixtures configure and run (the
  project's own after ``agentjobs.install(app)``).

With ``agentjobs_worker`` requested, ``complete.delay(...).get()`` in the test goes
through the private Redis, the worker and the simulator, whatever the developer's
shell says about AGENTJOBS_* or ANTHROPIC_*.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from agentjobs.contrib import pytest_eval

# `pytest --agentjobs-eval CASES.jsonl`: the eval hooks (pytest_eval.py), inert without it.
from agentjobs.contrib.pytest_eval import (  # noqa: F401
    pytest_addoption,
    pytest_collect_file,
    pytest_sessionfinish,
)

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from agentjobs.contrib.testing import RedisServer
    from agentjobs.simulator import SimHandle

#: The API key the client sends to the simulator (which accepts any key): never a
#: real one from the developer's shell.
SIM_API_KEY = "sk-ant-test"
BROKER_DB, STATE_DB, BACKEND_DB = 0, 1, 2

_RUN_REDIS = pytest.StashKey["PrivateRedis"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "agentjobs_worker(queues=None, concurrency=8): the queues the agentjobs_worker "
        "fixture consumes (default every claude.* queue) and its threads",
    )
    pytest_eval.configure(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    pytest_eval.unconfigure(config)
    run_wide = config.stash.get(_RUN_REDIS, None)
    if run_wide is not None:
        del config.stash[_RUN_REDIS]
        run_wide.close()


# -- the pieces ------------------------------------------------------------------------


class PrivateRedis:
    """A private ``redis-server`` and agentjobs pointed at it: ``AGENTJOBS_BROKER_URL``,
    ``AGENTJOBS_REDIS_URL`` and ``AGENTJOBS_RESULT_BACKEND`` set (subprocesses started
    from the test inherit them), the settings re-read, and each app given to ``bind``
    re-pointed; ``close`` undoes all of it and stops the server."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self._env = pytest.MonkeyPatch()
        self._bound: list[tuple[Celery, tuple[str, str]]] = []

    @classmethod
    def start(cls) -> PrivateRedis:
        from agentjobs.contrib.testing import RedisServer

        private = cls(RedisServer().start())
        for name, value in private.env.items():
            private._env.setenv(name, value)
        _reread_settings()
        return private

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT``, no database."""
        return self.server.url

    @property
    def broker_url(self) -> str:
        return f"{self.url}/{BROKER_DB}"

    @property
    def state_url(self) -> str:
        return f"{self.url}/{STATE_DB}"

    @property
    def backend_url(self) -> str:
        return f"{self.url}/{BACKEND_DB}"

    @property
    def env(self) -> dict[str, str]:
        """The variables that point an agentjobs process here (for a subprocess's env)."""
        return {
            "AGENTJOBS_BROKER_URL": self.broker_url,
            "AGENTJOBS_REDIS_URL": self.state_url,
            "AGENTJOBS_RESULT_BACKEND": self.backend_url,
        }

    def client(self, db: int = STATE_DB) -> redis.Redis:
        """A new client of one database (the caller closes it)."""
        import redis

        return redis.Redis.from_url(f"{self.url}/{db}")

    def bind(self, app: Celery) -> None:
        """Point ``app``'s broker and result backend here (``close`` points them back)."""
        before = _point(app, self.broker_url, self.backend_url)
        if before != (self.broker_url, self.backend_url):
            self._bound.append((app, before))

    def close(self) -> None:
        # AsyncResults unsubscribe from the result backend when collected: collect them
        # while the server still runs, or each one prints a reconnect error at exit.
        gc.collect()
        while self._bound:
            app, (broker_url, backend_url) = self._bound.pop()
            _point(app, broker_url, backend_url)
        self._env.undo()
        _reread_settings()
        self.server.cleanup()


def start_redis_for_run(config: pytest.Config) -> PrivateRedis:
    """Start the private Redis now, for the whole run, and point the environment at it;
    ``agentjobs_redis`` then returns this one, and it stops when pytest exits.

    For a suite whose code reads AGENTJOBS_* before any fixture runs (subprocesses
    started without the fixtures, settings read at import): call it from
    ``pytest_configure`` in conftest.py.
    """
    run_wide = config.stash.get(_RUN_REDIS, None)
    if run_wide is None:
        run_wide = config.stash[_RUN_REDIS] = PrivateRedis.start()
    return run_wide


def all_queues() -> tuple[str, ...]:
    """The ``claude.*`` queue of every model family."""
    from agentjobs import catalog

    return tuple(catalog.queue_for(family) for family in catalog.FAMILIES)


def purge(queues: Iterable[str] | None = None, app: Celery | None = None) -> None:
    """Empty ``queues`` (default: every ``claude.*`` queue) on ``app``'s broker."""
    app = app if app is not None else _agentjobs_app()
    # Not app.control.purge(): that empties only the queues this process has selected to
    # consume from (the default queue alone, until a worker selects more).
    with app.connection_for_write() as conn:
        for name in queues if queues is not None else all_queues():
            app.amqp.queues[name].bind(conn.default_channel).purge()


@contextlib.contextmanager
def in_process_worker(
    queues: Iterable[str] | None = None,
    concurrency: int = 8,
    hostname: str | None = None,
    app: Celery | None = None,
) -> Iterator[Any]:
    """A real Celery worker (agentjobs' threads pool) in this process for the block,
    consuming ``queues`` (default: every ``claude.*`` queue); leaving the block stops it
    warm (running tasks get 30 s to finish). Yields the ``WorkController``."""
    from celery.contrib.testing.worker import start_worker

    with start_worker(
        app if app is not None else _agentjobs_app(),
        pool="threads",
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=list(queues if queues is not None else all_queues()),
        hostname=hostname,
        shutdown_timeout=30.0,
    ) as worker:
        yield worker


@contextlib.contextmanager
def sim_reset_for_test(server: SimHandle) -> Iterator[SimHandle]:
    """``server`` reset (zero counters, full buckets, empty prompt cache, the seed's
    dice) for the block; settings changed with ``configure`` are put back after it."""
    before = dataclasses.asdict(server.config)
    server.reset()
    try:
        yield server
    finally:
        after = dataclasses.asdict(server.config)
        changed = {name: value for name, value in before.items() if after[name] != value}
        if changed:
            server.configure(**changed)


def _agentjobs_app() -> Celery:
    # The project's own app once agentjobs.install ran on it, else agentjobs' own.
    from agentjobs.worker.app import publishing_app

    return publishing_app()


def _reread_settings() -> None:
    from agentjobs.settings import reset_settings

    reset_settings()


def _point(app: Celery, broker_url: str, backend_url: str) -> tuple[str, str]:
    """Set ``app``'s broker and result backend URLs; returns the ones it had."""
    conf = app.conf
    before = (str(conf.broker_url), str(conf.result_backend))
    if before == (broker_url, backend_url):
        return before
    conf.update(broker_url=broker_url, result_backend=backend_url)
    # The app builds its broker connection pool and result backend on first use and
    # keeps them, so an app already used would go on talking to the old URLs. Celery has
    # no public call to drop them: these are what its after-fork handler resets, plus the
    # backend (cached per app when thread-safe, else per thread in ``_local``).
    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
    app._backend_cache = None
    app._local = threading.local()
    return before


# -- the fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def agentjobs_app() -> Celery:
    """The Celery app the agentjobs fixtures point at the private Redis and run a worker
    of: the one ``complete`` publishes through, i.e. the project's own once
    ``agentjobs.install`` ran on it (before the session's first fixture), else
    agentjobs' own (``agentjobs.app``)."""
    return _agentjobs_app()


@pytest.fixture(scope="session")
def agentjobs_redis(
    request: pytest.FixtureRequest, agentjobs_app: Celery
) -> Iterator[PrivateRedis]:
    """A private redis-server for the session (a ``PrivateRedis``: ``url``,
    ``broker_url``, ``state_url``, ``backend_url``, ``env``, ``client(db)``), with
    AGENTJOBS_BROKER_URL, AGENTJOBS_REDIS_URL, AGENTJOBS_RESULT_BACKEND and
    ``agentjobs_app`` pointed at it until the session ends."""
    run_wide = request.config.stash.get(_RUN_REDIS, None)
    private = run_wide if run_wide is not None else PrivateRedis.start()
    try:
        private.bind(agentjobs_app)
        yield private
    finally:
        if run_wide is None:
            private.close()


@pytest.fixture
def agentjobs_state(agentjobs_redis: PrivateRedis) -> Iterator[redis.Redis]:
    """A client of the state store (the limiter, idempotency records, dead letters, the
    response cache, counters), emptied before the test."""
    client = agentjobs_redis.client(STATE_DB)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(scope="session")
def agentjobs_sim_server() -> Iterator[SimHandle]:
    """The simulator on a thread and a free port, zero latency, for the session (a
    ``SimHandle``: ``base_url``, ``stats()``, ``configure(...)``, ``reset()``), with
    ANTHROPIC_BASE_URL pointed at it and ANTHROPIC_API_KEY a test key (the developer's
    key and auth token are never sent)."""
    from agentjobs.api import client
    from agentjobs.simulator import SimConfig, run_in_thread

    server = run_in_thread(SimConfig(latency_median_ms=0))
    env = pytest.MonkeyPatch()
    env.setenv("ANTHROPIC_BASE_URL", server.base_url)
    env.setenv("ANTHROPIC_API_KEY", SIM_API_KEY)
    env.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    client.reset_client()
    try:
        yield server
    finally:
        server.stop()
        env.undo()
        client.reset_client()


@pytest.fixture
def agentjobs_sim(agentjobs_sim_server: SimHandle) -> Iterator[SimHandle]:
    """The session's simulator, reset for this test: counters zero, rate-limit buckets
    full, prompt cache empty; settings the test changes with ``configure`` are put back
    after it."""
    with sim_reset_for_test(agentjobs_sim_server) as server:
        yield server


@pytest.fixture
def agentjobs_worker(
    request: pytest.FixtureRequest,
    agentjobs_app: Celery,
    agentjobs_redis: PrivateRedis,
    agentjobs_state: redis.Redis,
    agentjobs_sim: SimHandle,
) -> Iterator[Any]:
    """A real Celery worker in the test process (agentjobs' threads pool, 8 threads)
    consuming every ``claude.*`` queue, against the private Redis and the simulator;
    its queues are emptied before and after the test and the state store before it.
    ``@pytest.mark.agentjobs_worker(queues=["claude.haiku"], concurrency=2)`` chooses
    queues and threads. Yields the ``WorkController``."""
    marker = request.node.get_closest_marker("agentjobs_worker")
    options = dict(marker.kwargs) if marker is not None else {}
    queues = options.pop("queues", None) or all_queues()
    queues = (queues,) if isinstance(queues, str) else tuple(queues)
    purge(queues, agentjobs_app)
    with in_process_worker(queues, app=agentjobs_app, **options) as worker:
        yield worker
    purge(queues, agentjobs_app)

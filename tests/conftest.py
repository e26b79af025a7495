"""Shared fixtures: agentjobs' pytest plugin (agentjobs.contrib.pytest_plugin), under the
names this suite's tests use, and a private Redis for the whole run.

The suite's subprocesses (workers, the CLI) read AGENTJOBS_* from the environment
whether or not a test asks for a fixture, so the private redis-server (a free port, no
persistence: parallel test runs never share queues) starts in pytest_configure, before
any test module imports agentjobs. DB 0 is the broker, DB 1 the state store, DB 2 the
result backend.
"""

from __future__ import annotations

import os
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

# Before the import below: pytest_plugins names the module again, and pytest warns when
# a plugin it would rewrite asserts in was imported first. Loaded through the entry
# point (the installed package), it is imported and rewritten already: asking again
# would only warn.
if "agentjobs.contrib.pytest_plugin" not in sys.modules:
    pytest.register_assert_rewrite("agentjobs.contrib.pytest_plugin")

from agentjobs.contrib import pytest_plugin
from agentjobs.contrib.pytest_plugin import PrivateRedis
from agentjobs.contrib.pytest_plugin import in_process_worker as in_process_worker
from agentjobs.contrib.testing import RedisServer

# Loaded here as well as through the entry point, so the suite runs before
# `pip install -e .` has registered it (and with -p no:... of other plugins).
pytest_plugins = ["agentjobs.contrib.pytest_plugin"]


def pytest_configure(config: pytest.Config) -> None:
    pytest_plugin.start_redis_for_run(config)
    # Tests never reach the real API, whatever the developer's shell has.
    os.environ.pop("ANTHROPIC_API_KEY", None)
    os.environ.pop("ANTHROPIC_AUTH_TOKEN", None)
    os.environ.pop("ANTHROPIC_BASE_URL", None)


@pytest.fixture(scope="session")
def redis_server(agentjobs_redis: PrivateRedis) -> RedisServer:
    return agentjobs_redis.server


@pytest.fixture
def state_redis(agentjobs_state: redis.Redis) -> redis.Redis:
    """The state store (DB 1), empty at the start of the test."""
    return agentjobs_state


@pytest.fixture(scope="session")
def sim(agentjobs_sim_server: Any) -> Any:
    """The simulator in this process on a free port, zero latency; the SDK points at it."""
    return agentjobs_sim_server


@pytest.fixture
def fresh_sim(agentjobs_sim: Any) -> Any:
    """The session simulator with counters, buckets and prompt cache reset."""
    return agentjobs_sim


@pytest.fixture
def purge_queues() -> Iterator[None]:
    """Empty the claude.* queues before and after the test."""
    pytest_plugin.purge()
    yield
    pytest_plugin.purge()


@pytest.fixture
def worker(agentjobs_worker: Any) -> Any:
    """An in-process worker on every claude.* queue, against the simulator."""
    return agentjobs_worker


#: The PostgreSQL the suite creates its private database on (trust auth, as a superuser).
POSTGRES_URL = os.environ.get(
    "AGENTJOBS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a private database (``agentjobs_test_<random>``) on POSTGRES_URL's
    server, created for this run and dropped at its end; skipped when PostgreSQL is down,
    failing in CI (CI=true), as RabbitMQ's tests do."""
    import urllib.parse

    import psycopg

    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} (CI must test it): {why}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}: {why}")
    name = f"agentjobs_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urllib.parse.urlsplit(POSTGRES_URL)._replace(path=f"/{name}").geturl()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def celery_commands_site(tmp_path: Path) -> Path:
    """A folder to put on a subprocess's PYTHONPATH that makes pyproject.toml's
    celery.commands entry point visible to Celery, as installing agentjobs does
    (``celery -A proj agentjobs ...``) without reinstalling the venv."""
    root = Path(__file__).resolve().parents[1]
    with open(root / "pyproject.toml", "rb") as fh:
        points = tomllib.load(fh)["project"]["entry-points"]["celery.commands"]
    site = tmp_path / "site"
    dist = site / "agentjobs_celery_commands-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: agentjobs-celery-commands\nVersion: 0\n"
    )
    lines = "".join(f"{name} = {target}\n" for name, target in points.items())
    (dist / "entry_points.txt").write_text(f"[celery.commands]\n{lines}")
    return site

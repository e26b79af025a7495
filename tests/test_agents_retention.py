"""The session retention a worker applies by itself: a real in-process worker, with the
session store in a private PostgreSQL database, prunes the ended sessions past
AGENTJOBS_SESSION_RETENTION_S and leaves the one waiting for approval (its clock moved
forward instead of waiting). The stores' own prune is tested in test_session_store.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from agentjobs.agents import retention, stores, tasks
from agentjobs.agents.postgres_store import CHECKPOINTS, SESSIONS
from agentjobs.agents.store import SessionStore
from agentjobs.contrib.pytest_plugin import in_process_worker
from agentjobs.contrib.testing import wait_for
from agentjobs.settings import reset_settings


@pytest.fixture
def pg_sessions(
    postgres_url: str, state_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SessionStore]:
    monkeypatch.setenv("AGENTJOBS_SESSION_STORE", postgres_url)
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "3600")
    reset_settings()
    stores._store.reset()
    store = stores.session_store()
    store.migrate()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SESSIONS}, {CHECKPOINTS}")
    yield store
    monkeypatch.delenv("AGENTJOBS_SESSION_STORE")
    reset_settings()
    stores._store.reset()


def _record(session_id: str, status: str) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "agent": "retention",
        "tenant": None,
        "status": status,
        "stop_reason": None,
        "steps": [],
        "tool_calls": [],
        "cost_usd": 0.0,
    }


def _prune_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == retention._Prune.name]


def test_a_ready_worker_prunes_ended_sessions_by_itself(
    pg_sessions: SessionStore, agentjobs_redis: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg_sessions.create(_record("ended", "completed"))
    pg_sessions.create(_record("asks", "waiting_approval"))
    monkeypatch.setattr(retention, "FIRST_S", 0.05)
    monkeypatch.setattr(retention, "INTERVAL_S", 0.05)
    monkeypatch.setattr(retention, "clock", lambda: time.time() + 2 * 3600)
    # Another test's worker in this process may still have its thread (it ends at its
    # next round): count this worker's alone.
    others = set(_prune_threads())
    with in_process_worker(["agentjobs.tools"], concurrency=1) as worker:
        # What a worker's worker_ready does (celery's test worker sends none): the
        # handler, the one that starts the sweep and the prune.
        tasks._start_sweep(sender=worker.consumer)
        tasks._start_sweep(sender=worker.consumer)  # a second ready: still one thread
        wait_for(lambda: pg_sessions.get("ended") is None, timeout=30)
        assert len(set(_prune_threads()) - others) == 1
    assert pg_sessions.load("asks")["status"] == "waiting_approval"
    # it ends with its worker
    wait_for(lambda: not set(_prune_threads()) - others, timeout=30)

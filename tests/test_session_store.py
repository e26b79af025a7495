"""The session store: one suite run over both backends (the state store, Redis, and
PostgreSQL in a private database), plus what only one of them has (Redis retention,
PostgreSQL's schema and checkpoint history) and the per-process factory."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis

from agentjobs.agents import redis_store, stores
from agentjobs.agents.postgres_store import (
    CHECKPOINTS,
    SESSIONS,
    PostgresSessionStore,
    SchemaMissing,
    SessionStoreUnreachable,
)
from agentjobs.agents.redis_store import (
    RedisSessionStore,
    index_key,
    record_key,
    status_key,
)
from agentjobs.agents.store import (
    Pruned,
    SessionExists,
    SessionNotFound,
    SessionStore,
    VersionConflict,
    summary,
)
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import ConfigurationError, RequestError
from agentjobs.settings import reset_settings


def record(session_id: str, **fields: Any) -> dict[str, Any]:
    """A record as the loop writes one (the store reads only its indexed fields)."""
    rec: dict[str, Any] = {
        "session_id": session_id,
        "agent": "router",
        "tenant": None,
        "status": "running",
        "stop_reason": None,
        "input": "where is booking B-1?",
        "output": None,
        "transcript": [{"role": "user", "content": "where is booking B-1?"}],
        "steps": [],
        "tool_calls": [],
        "cost_usd": 0.0,
        "counter": 0,
    }
    rec.update(fields)
    return rec


@pytest.fixture(scope="module")
def migrated_postgres(postgres_url: str) -> str:
    PostgresSessionStore(postgres_url).migrate()
    return postgres_url


@pytest.fixture(params=["redis", "postgres"])
def store(request: pytest.FixtureRequest) -> Iterator[SessionStore]:
    if request.param == "redis":
        request.getfixturevalue("state_redis")  # the private state store, emptied
        yield RedisSessionStore()
        return
    url = request.getfixturevalue("migrated_postgres")
    pg = PostgresSessionStore(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SESSIONS}, {CHECKPOINTS}")
    yield pg
    pg.close()


def test_create_and_get(store: SessionStore) -> None:
    before = time.time()
    stored = store.create(record("s1", tenant="acme", tool_input={"zone": "EU", "id": 7}))
    assert stored["version"] == 1
    assert stored["created_at"] >= before and stored["updated_at"] >= stored["created_at"]
    got = store.get("s1")
    assert got == stored
    assert got["transcript"] == [{"role": "user", "content": "where is booking B-1?"}]
    assert list(got["tool_input"]) == ["zone", "id"]  # as written: a resent prefix is the same
    assert store.get("nope") is None
    with pytest.raises(SessionNotFound, match="nope"):
        store.load("nope")
    with pytest.raises(SessionExists, match="s1"):
        store.create(record("s1"))
    assert store.load("s1")["version"] == 1  # the refused create changed nothing


def test_put_checks_the_version(store: SessionStore) -> None:
    first = store.create(record("s1"))
    second = store.put({**first, "status": "completed", "output": "on time"})
    assert second["version"] == 2
    assert store.load("s1")["output"] == "on time"
    # a second copy of the same step, written from the record it read before
    with pytest.raises(VersionConflict, match="version 1 was read, 2 is stored"):
        store.put({**first, "output": "late"})
    assert store.load("s1") == second
    with pytest.raises(SessionNotFound):
        store.put(record("ghost", version=1))
    with pytest.raises(RequestError, match="unknown status"):
        store.put({**second, "status": "paused"})


def test_concurrent_updates_lose_nothing(store: SessionStore) -> None:
    store.create(record("s1"))
    threads, rounds = 6, 15
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def bump(rec: dict[str, Any]) -> dict[str, Any]:
        rec["counter"] += 1
        rec["steps"].append({"n": rec["counter"], "by": threading.get_ident()})
        return rec

    def writer() -> None:
        try:
            start.wait()
            for _ in range(rounds):
                store.update("s1", bump, attempts=1_000)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    pool = [threading.Thread(target=writer) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    final = store.load("s1")
    assert final["counter"] == threads * rounds
    assert [s["n"] for s in final["steps"]] == list(range(1, threads * rounds + 1))
    assert final["version"] == threads * rounds + 1


def test_update_that_changes_nothing_writes_nothing(store: SessionStore) -> None:
    store.create(record("s1"))
    assert store.update("s1", lambda rec: None)["version"] == 1
    assert store.load("s1")["version"] == 1


def test_list_filters_and_order(store: SessionStore) -> None:
    t0 = 1_800_000_000.0
    rows = [
        ("a", "router", "acme", "completed"),
        ("b", "bookings", "acme", "running"),
        ("c", "billing", None, "waiting_approval"),
        ("d", "bookings", "globex", "completed"),
        ("e", "router", "acme", "running"),
    ]
    for i, (sid, agent, tenant, status) in enumerate(rows):
        store.create(record(sid, agent=agent, tenant=tenant, status=status, created_at=t0 + i))

    def ids(**filters: Any) -> list[str]:
        return [r["session_id"] for r in store.list(**filters)]

    assert ids() == ["e", "d", "c", "b", "a"]  # newest first
    assert ids(limit=2) == ["e", "d"]
    assert ids(limit=0) == []
    assert ids(status="completed") == ["d", "a"]
    assert ids(status="running", tenant="acme") == ["e", "b"]
    assert ids(agent="bookings") == ["d", "b"]
    assert ids(agent="bookings", tenant="globex") == ["d"]
    assert ids(status="cancelled") == []
    with pytest.raises(RequestError, match="unknown status 'done'"):
        store.list(status="done")

    # a status change moves the session between the status lists, keeping its place
    b = store.load("b")
    store.put({**b, "status": "completed"})
    assert ids(status="completed") == ["d", "b", "a"]
    assert ids(status="running") == ["e"]
    # a hand-off changes the agent running now
    e = store.load("e")
    store.put({**e, "agent": "billing"})
    assert ids(agent="billing") == ["e", "c"]


def test_list_rows_are_summaries(store: SessionStore) -> None:
    stored = store.create(
        record(
            "s1",
            status="stopped",
            stop_reason="max_steps",
            steps=[{"n": 1}, {"n": 2}],
            tool_calls=[{"tool_use_id": "toolu_1"}],
            cost_usd=0.0125,
        )
    )
    (row,) = store.list()
    assert row == summary(stored)
    assert row["steps"] == 2 and row["tool_calls"] == 1 and row["cost_usd"] == 0.0125
    assert row["stop_reason"] == "max_steps"


def test_delete(store: SessionStore) -> None:
    store.create(record("s1"))
    store.create(record("s2"))
    assert store.delete("s1") is True
    assert store.delete("s1") is False
    assert store.get("s1") is None
    assert [r["session_id"] for r in store.list()] == ["s2"]
    assert store.create(record("s1"))["version"] == 1  # the id is free again


def _past_retention(store: SessionStore) -> Pruned:
    """Let the retention act as if it had passed for every record written so far: the
    PostgreSQL prune with its clock moved past it; Redis' own TTLs (the retention is
    0.2 s here), then its prune for the ids they left in the indexes."""
    if isinstance(store, PostgresSessionStore):
        return store.prune(now=time.time() + 1.0)
    assert isinstance(store, RedisSessionStore)
    ended = [record_key(i) for i in ("done", "failed", "cancelled", "stopped")]
    wait_for(lambda: store.client.exists(*ended) == 0, timeout=10)
    return store.prune(now=time.time() + 1.0)


def test_retention_removes_ended_sessions_only(
    store: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "0.2")
    reset_settings()
    store.create(record("running"))
    store.create(record("waiting", status="waiting_approval"))
    for status in ("completed", "failed", "cancelled", "stopped"):
        store.create(record(status if status != "completed" else "done", status=status))
    ended = store.create(record("reopened", status="failed"))
    store.put({**ended, "status": "running"})  # a replay re-opened it
    pruned = _past_retention(store)
    assert pruned.sessions == 4
    assert sorted(r["session_id"] for r in store.list()) == ["reopened", "running", "waiting"]
    for gone in ("done", "failed", "cancelled", "stopped"):
        assert store.get(gone) is None
    assert store.load("waiting")["status"] == "waiting_approval"
    assert store.list(status="completed") == []
    assert _past_retention(store).sessions == 0  # nothing left to remove


def test_migrate_is_idempotent(store: SessionStore) -> None:
    store.create(record("s1"))
    done: list[BaseException | None] = []

    def migrate() -> None:
        try:
            store.migrate()
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    pool = [threading.Thread(target=migrate) for _ in range(3)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    store.migrate()
    assert done == [None, None, None]
    assert store.load("s1")["version"] == 1  # data kept


# -- Redis only ------------------------------------------------------------------------


def test_redis_ttls_are_the_retention_once_ended_and_none_before(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "3600")
    reset_settings()
    store = RedisSessionStore()
    ended = store.create(record("e1", status="completed"))
    for k in (record_key("e1"), index_key(), status_key("completed")):
        assert 3_500_000 < state_redis.pttl(k) <= 3_600_000, k
    stored = store.create(record("s1"))
    waiting = store.put({**stored, "status": "waiting_approval"})
    # not ended: no TTL on the record, nor on the indexes that hold it
    for k in (record_key("s1"), index_key(), status_key("waiting_approval")):
        assert state_redis.pttl(k) == -1, k
    store.put({**ended, "output": "x"})  # a later write of an ended one: no TTL on the index
    assert state_redis.pttl(index_key()) == -1
    done = store.put({**waiting, "status": "completed"})
    assert state_redis.zscore(status_key("waiting_approval"), "s1") is None
    assert state_redis.zscore(status_key("completed"), "s1") == stored["created_at"]
    assert 3_500_000 < state_redis.pttl(record_key("s1")) <= 3_600_000
    store.put({**done, "status": "running"})  # re-opened by a replay: kept again
    assert state_redis.pttl(record_key("s1")) == -1

    # an ended record past its retention is gone: get and list no longer see it
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "0.05")
    reset_settings()
    store.create(record("short", status="failed"))
    wait_for(lambda: store.get("short") is None, timeout=10)
    assert [r["session_id"] for r in store.list()] == ["s1", "e1"]
    assert state_redis.zscore(index_key(), "short") is None  # list dropped its id


def test_redis_create_sweeps_expired_ids_from_the_indexes(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "60")
    reset_settings()
    store = RedisSessionStore()
    old = time.time() - 120
    for i in range(3):
        store.create(record(f"old{i}", created_at=old + i, status="completed"))
    store.create(record("young", created_at=time.time() - 30))
    for i in range(3):  # as their TTL would have: written long ago, never since
        state_redis.delete(record_key(f"old{i}"))
    store.create(record("new"))
    assert state_redis.zrange(index_key(), 0, -1) == [b"young", b"new"]
    assert state_redis.zcard(status_key("completed")) == 0


def test_redis_write_sent_again_after_a_lost_reply_is_not_a_conflict(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RedisSessionStore()
    stored = store.create(record("s1"))

    def resend(fn: Any) -> Any:
        fn()  # landed, but its reply was lost: the retry sends the same call again
        return fn()

    monkeypatch.setattr(redis_store, "retrying", resend)
    assert store.put({**stored, "output": "x"})["version"] == 2
    assert store.create(record("s2"))["version"] == 1
    monkeypatch.undo()
    assert store.load("s1")["version"] == 2 and store.load("s1")["output"] == "x"
    with pytest.raises(VersionConflict):  # another write from the same read: refused
        store.put({**stored, "output": "y"})
    with pytest.raises(SessionExists):
        store.create(record("s2"))


# -- PostgreSQL only -------------------------------------------------------------------


def test_postgres_keeps_every_checkpoint(migrated_postgres: str) -> None:
    store = PostgresSessionStore(migrated_postgres)
    first = store.create(record("audit"))
    second = store.put({**first, "status": "waiting_approval"})
    with pytest.raises(VersionConflict):
        store.put({**first, "status": "failed"})  # refused: not in the history
    store.put({**second, "status": "completed", "output": "refunded"})
    assert store.delete("audit")
    history = store.checkpoints("audit")
    assert [(h["version"], h["status"]) for h in history] == [
        (1, "running"),
        (2, "waiting_approval"),
        (3, "completed"),
    ]
    assert history[-1]["output"] == "refunded"
    store.close()


class Clock:
    """A clock moved by hand: what the PostgreSQL store stamps its writes with and
    prunes by."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pg(
    migrated_postgres: str, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PostgresSessionStore]:
    """An empty PostgreSQL store on ``clock``, with a retention of an hour."""
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "3600")
    reset_settings()
    store = PostgresSessionStore(migrated_postgres, clock=clock)
    with psycopg.connect(migrated_postgres, autocommit=True) as conn:
        conn.execute(f"TRUNCATE {SESSIONS}, {CHECKPOINTS}")
    yield store
    store.close()


def _history_rows(url: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            f"SELECT session_id, count(*) FROM {CHECKPOINTS} GROUP BY session_id"
        ).fetchall()
    return {sid: int(n) for sid, n in rows}


def test_postgres_prune_removes_ended_sessions_and_their_history(
    pg: PostgresSessionStore, clock: Clock
) -> None:
    first = pg.create(record("done"))
    pg.put({**first, "status": "completed"})
    pg.create(record("running"))
    waiting = pg.create(record("waiting"))
    pg.put({**waiting, "status": "waiting_approval"})
    late = pg.create(record("late", status="cancelled"))
    clock.advance(3_000)
    # written again after it ended (a running tool's result): counted from that write
    pg.put({**late, "output": "kept"})
    clock.advance(600)
    assert pg.prune() == Pruned(0, 0)  # an hour exactly: not past it yet
    clock.advance(1)
    assert pg.prune(dry_run=True) == Pruned(1, 2)
    assert pg.get("done") is not None  # a dry run removes nothing
    assert pg.prune() == Pruned(1, 2)
    assert pg.get("done") is None and pg.checkpoints("done") == []
    assert pg.load("late")["output"] == "kept"
    clock.advance(10 * 86_400)
    assert pg.prune() == Pruned(1, 2)  # "late", at last
    # however old, a session not ended keeps its record and its whole history
    assert sorted(r["session_id"] for r in pg.list()) == ["running", "waiting"]
    assert _history_rows(pg.url) == {"running": 1, "waiting": 2}
    assert pg.prune() == Pruned(0, 0)


def test_postgres_prune_takes_the_oldest_first_up_to_its_limit(
    pg: PostgresSessionStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentjobs.agents import postgres_store

    monkeypatch.setattr(postgres_store, "PRUNE_BATCH", 2)  # several batches a round
    for i in range(5):
        pg.create(record(f"s{i}", status="failed"))
        clock.advance(1)
    clock.advance(3_600)
    assert pg.prune(limit=3) == Pruned(3, 3)
    assert sorted(r["session_id"] for r in pg.list()) == ["s3", "s4"]
    assert pg.prune() == Pruned(2, 2)
    assert pg.list() == []


def test_postgres_prune_removes_a_deleted_sessions_history_once_as_old(
    pg: PostgresSessionStore, clock: Clock
) -> None:
    pg.create(record("gone", status="completed"))
    assert pg.delete("gone")  # the record only: its history stays, for the audit
    pg.create(record("reused", status="completed"))
    assert pg.delete("reused")
    clock.advance(7_200)
    pg.create(record("reused"))  # the id taken again, by a session still running
    clock.advance(1)
    assert pg.prune(dry_run=True) == Pruned(0, 1)
    assert pg.prune() == Pruned(0, 1)
    assert pg.checkpoints("gone") == []
    # a taken id's old history stays while its newest row is young
    assert [h["status"] for h in pg.checkpoints("reused")] == ["completed", "running"]


def test_postgres_prune_steps_over_a_row_a_writer_holds(
    pg: PostgresSessionStore, clock: Clock
) -> None:
    pg.create(record("held", status="completed"))
    pg.create(record("free", status="completed"))
    clock.advance(7_200)
    # Were the row waited for, this would fail (lock_timeout) rather than hang.
    pg._conn().execute("SET lock_timeout = '10s'")
    with psycopg.connect(pg.url) as writer:  # a put in flight: the row is locked
        writer.execute(f"SELECT 1 FROM {SESSIONS} WHERE session_id = 'held' FOR UPDATE")
        assert pg.prune() == Pruned(1, 1)
        writer.rollback()
    assert pg.get("held") is not None and pg.get("free") is None
    assert pg.prune() == Pruned(1, 1)


def test_postgres_without_schema_says_to_migrate(postgres_url: str) -> None:
    bare = postgres_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(bare, autocommit=True) as conn:
        name = "agentjobs_test_bare_" + str(int(time.time() * 1e6))
        conn.execute(f'CREATE DATABASE "{name}"')
        try:
            store = PostgresSessionStore(bare.rsplit("/", 1)[0] + f"/{name}")
            with pytest.raises(SchemaMissing, match="run `agentjobs sessions migrate`"):
                store.get("s1")
            store.migrate()
            assert store.get("s1") is None
            store.close()
        finally:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_postgres_unreachable_is_one_line() -> None:
    store = PostgresSessionStore("postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(SessionStoreUnreachable, match=r"cannot reach the session store .*:1/none"):
        store.get("s1")


def test_postgres_connection_lost_is_one_line_then_reconnects(migrated_postgres: str) -> None:
    store = PostgresSessionStore(migrated_postgres)
    store.create(record("lost"))
    pid = store._conn().info.backend_pid
    with psycopg.connect(migrated_postgres, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))  # waits for it
    with pytest.raises(SessionStoreUnreachable, match="cannot reach the session store"):
        store.get("lost")
    assert store.load("lost")["version"] == 1  # a new connection
    assert store._conn().info.backend_pid != pid
    store.close()


def test_postgres_store_survives_fork(
    migrated_postgres: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTJOBS_SESSION_STORE", migrated_postgres)
    reset_settings()
    parent = stores.session_store()
    parent.create(record("forked"))  # the parent's connection is open
    child = os.fork()
    if child == 0:  # the child writes through its own store and connection
        code = 1
        try:
            mine = stores.session_store()
            if mine is not parent:
                mine.update("forked", lambda rec: {**rec, "counter": 7})
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the child did not close the parent's connection: it still answers
    assert parent.load("forked")["counter"] == 7
    monkeypatch.delenv("AGENTJOBS_SESSION_STORE")
    reset_settings()
    stores._store.reset()


# -- the factory -----------------------------------------------------------------------


def test_session_store_follows_the_settings(
    monkeypatch: pytest.MonkeyPatch, migrated_postgres: str
) -> None:
    monkeypatch.delenv("AGENTJOBS_SESSION_STORE", raising=False)
    reset_settings()
    first = stores.session_store()
    assert isinstance(first, RedisSessionStore)
    assert stores.session_store() is first  # once per process
    monkeypatch.setenv("AGENTJOBS_SESSION_STORE", migrated_postgres)
    reset_settings()
    pg = stores.session_store()
    assert isinstance(pg, PostgresSessionStore) and pg.url == migrated_postgres
    assert stores.session_store() is pg
    monkeypatch.setenv("AGENTJOBS_SESSION_STORE", "mysql://root:secret@db/x")
    reset_settings()
    with pytest.raises(ConfigurationError, match="mysql:// is not a session store") as err:
        stores.session_store()
    assert "secret" not in str(err.value)
    monkeypatch.setenv("AGENTJOBS_SESSION_STORE", "garbage")
    reset_settings()
    with pytest.raises(ConfigurationError, match=r"'garbage' \(not a URL\) is not a session"):
        stores.session_store()
    monkeypatch.delenv("AGENTJOBS_SESSION_STORE")
    reset_settings()
    stores._store.reset()

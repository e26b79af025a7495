"""Session records in PostgreSQL (``AGENTJOBS_SESSION_STORE=postgresql://...``).

For the sessions whose record must outlive a cache: the audit trail a disputed booking
needs. Two tables, created by ``agentjobs sessions migrate`` (``migrate()``):

- ``agentjobs_sessions``: the current record, one row per session (the record as
  ``json``, kept as written: a tool's input keeps its keys' order, which ``jsonb``
  would not, so a resent transcript is the same text), beside the columns ``list``
  filters and orders by; written with a version check (``UPDATE ... WHERE version =
  read``), so two copies of a step cannot both apply.
- ``agentjobs_session_checkpoints``: append-only, one row per write (the whole record
  as written, its version and time), inserted in the same transaction as the write.
  ``delete`` removes the current record only: the history stays.

Retention (``store.py``): ``prune`` deletes the sessions ended (a final status) whose
last write is older than ``AGENTJOBS_SESSION_RETENTION_S``, with their history, and
the history of deleted sessions once its newest row is that old; a session running
or waiting for approval is never touched. Workers run it (``retention.py``), so no
cron is needed; ``agentjobs sessions prune`` runs it by hand. Each batch is one
transaction whose rows are taken ``FOR UPDATE SKIP LOCKED`` and re-checked on the
newest version: a write re-opening a session in the meantime either holds its row
(skipped) or has committed (no longer ended: kept), and two pruners at once share the
work instead of waiting on each other.

Connections (psycopg 3) are one per thread, opened on first use and again when broken;
a forked child opens its own (the store is built once per process, ``stores.py``, and
psycopg never closes a parent's connection from a child).
"""

from __future__ import annotations

import builtins
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Json

from agentjobs.agents.store import (
    FINAL,
    SUMMARY_FIELDS,
    Pruned,
    Record,
    SessionExists,
    SessionNotFound,
    SessionStore,
    VersionConflict,
    check_record,
    dumps,
    summary,
)
from agentjobs.errors import AgentJobsError, TransientError
from agentjobs.settings import get_settings

SESSIONS = "agentjobs_sessions"
CHECKPOINTS = "agentjobs_session_checkpoints"

#: The schema; every statement safe to run again.
SCHEMA = (
    f"""CREATE TABLE IF NOT EXISTS {SESSIONS} (
        session_id  text PRIMARY KEY,
        agent       text,
        tenant      text,
        status      text NOT NULL,
        stop_reason text,
        steps       integer NOT NULL,
        tool_calls  integer NOT NULL,
        cost_usd    double precision NOT NULL,
        created_at  double precision NOT NULL,
        updated_at  double precision NOT NULL,
        version     integer NOT NULL,
        record      json NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_created ON {SESSIONS} (created_at DESC)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_status ON {SESSIONS} (status, created_at DESC)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_tenant ON {SESSIONS} (tenant, created_at DESC)",
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_agent ON {SESSIONS} (agent, created_at DESC)",
    f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
        id         bigserial PRIMARY KEY,
        session_id text NOT NULL,
        version    integer NOT NULL,
        status     text NOT NULL,
        written_at double precision NOT NULL,
        record     json NOT NULL
    )""",
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_session ON {CHECKPOINTS} (session_id, version)",
    # For prune: the ended sessions by last write, and history rows by age.
    f"CREATE INDEX IF NOT EXISTS {SESSIONS}_ended ON {SESSIONS} (updated_at) "
    f"WHERE status IN ({', '.join(repr(s) for s in sorted(FINAL))})",
    f"CREATE INDEX IF NOT EXISTS {CHECKPOINTS}_written ON {CHECKPOINTS} (written_at)",
)

#: Sessions (or orphaned history rows) deleted per transaction by prune.
PRUNE_BATCH = 500

#: Held while migrating, so two `migrate` runs at once cannot race on CREATE.
_MIGRATE_LOCK = 0x61676A73  # "agjs"

_COLUMNS = ", ".join(SUMMARY_FIELDS)


class SessionStoreUnreachable(TransientError):
    """The database did not answer (the next call connects again)."""


class SchemaMissing(AgentJobsError):
    """The tables are not there: ``agentjobs sessions migrate`` creates them."""


class PostgresSessionStore(SessionStore):
    """Session records in the database at ``url``; ``clock`` stamps the writes and is
    what ``prune`` compares them with unless given ``now`` (tests move one by hand)."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.clock = clock
        self._local = threading.local()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            try:
                conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.OperationalError as exc:
                raise self._unreachable(exc) from None
            self._local.conn = conn
        return conn

    def _run(self, fn: Any) -> Any:
        """``fn(cursor)`` in one transaction; a missing table becomes SchemaMissing."""
        conn = self._conn()
        try:
            with conn.transaction(), conn.cursor() as cur:
                return fn(cur)
        except psycopg.errors.UndefinedTable:
            raise SchemaMissing(
                f"no session tables in {masked(self.url)}: run `agentjobs sessions migrate`"
            ) from None
        except psycopg.OperationalError as exc:  # the connection broke: a new one next time
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> SessionStoreUnreachable:
        return SessionStoreUnreachable(
            f"cannot reach the session store {masked(self.url)} "
            f"(AGENTJOBS_SESSION_STORE): {_first_line(exc)}"
        )

    # -- writes ----------------------------------------------------------------------

    def migrate(self) -> None:
        def run(cur: psycopg.Cursor[Any]) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
            for statement in SCHEMA:
                cur.execute(statement)

        self._run(run)

    def create(self, record: Record) -> Record:
        now = self.clock()
        stored = dict(record)
        stored["version"] = 1
        stored.setdefault("created_at", now)
        stored["updated_at"] = now

        def run(cur: psycopg.Cursor[Any]) -> bool:
            row = _row(stored)
            cur.execute(
                f"INSERT INTO {SESSIONS} ({_COLUMNS}, version, record) "
                f"VALUES ({', '.join(['%s'] * (len(SUMMARY_FIELDS) + 2))}) "
                "ON CONFLICT (session_id) DO NOTHING",
                row,
            )
            if cur.rowcount == 0:
                return False
            _checkpoint(cur, stored, now)
            return True

        if not self._run(run):
            raise SessionExists(f"session {stored['session_id']!r} exists")
        return stored

    def put(self, record: Record) -> Record:
        read = int(record["version"])
        now = self.clock()
        stored = dict(record)
        stored["version"] = read + 1
        stored["updated_at"] = now
        session_id = stored["session_id"]

        def run(cur: psycopg.Cursor[Any]) -> int | None:
            row = _row(stored)
            sets = ", ".join(f"{c} = %s" for c in (*SUMMARY_FIELDS[1:], "version", "record"))
            # Under READ COMMITTED a second writer waits for the first's row lock, then
            # finds the version moved and updates nothing: a compare-and-set.
            cur.execute(
                f"UPDATE {SESSIONS} SET {sets} WHERE session_id = %s AND version = %s",
                (*row[1:], session_id, read),
            )
            if cur.rowcount == 1:
                _checkpoint(cur, stored, now)
                return None
            cur.execute(f"SELECT version FROM {SESSIONS} WHERE session_id = %s", (session_id,))
            found = cur.fetchone()
            return -1 if found is None else int(found[0])

        stored_version = self._run(run)
        if stored_version == -1:
            raise SessionNotFound(f"no session {session_id!r}")
        if stored_version is not None:
            raise VersionConflict(
                f"session {session_id!r}: version {read} was read, {stored_version} is stored"
            )
        return stored

    def delete(self, session_id: str) -> bool:
        def run(cur: psycopg.Cursor[Any]) -> bool:
            cur.execute(f"DELETE FROM {SESSIONS} WHERE session_id = %s", (session_id,))
            return cur.rowcount == 1

        return bool(self._run(run))

    # -- retention -------------------------------------------------------------------

    def prune(
        self, *, now: float | None = None, dry_run: bool = False, limit: int = 10_000
    ) -> Pruned:
        horizon = (self.clock() if now is None else now) - get_settings().session_retention_s
        final = sorted(FINAL)
        if dry_run:
            return Pruned(*self._run(lambda cur: _count_prunable(cur, final, horizon, limit)))
        out = Pruned()
        while out.sessions < limit:
            batch = min(PRUNE_BATCH, limit - out.sessions)

            def sessions_batch(cur: psycopg.Cursor[Any], batch: int = batch) -> tuple[int, int]:
                cur.execute(
                    f"DELETE FROM {SESSIONS} WHERE session_id IN ("
                    f"SELECT session_id FROM {SESSIONS} WHERE status = ANY(%s) "
                    "AND updated_at < %s ORDER BY updated_at LIMIT %s "
                    "FOR UPDATE SKIP LOCKED) RETURNING session_id",
                    (final, horizon, batch),
                )
                ids = [row[0] for row in cur.fetchall()]
                if not ids:
                    return 0, 0
                cur.execute(f"DELETE FROM {CHECKPOINTS} WHERE session_id = ANY(%s)", (ids,))
                return len(ids), cur.rowcount

            sessions, checkpoints = self._run(sessions_batch)
            out.sessions += sessions
            out.checkpoints += checkpoints
            if sessions < batch:
                break
        # The history of deleted sessions (``delete``), once its newest row is as old.
        for _ in range(max(1, limit // PRUNE_BATCH)):

            def orphans(cur: psycopg.Cursor[Any]) -> int:
                cur.execute(
                    f"DELETE FROM {CHECKPOINTS} WHERE id IN ({_ORPHANS} LIMIT %s)",
                    (horizon, horizon, PRUNE_BATCH),
                )
                return int(cur.rowcount)

            rows = self._run(orphans)
            out.checkpoints += rows
            if rows < PRUNE_BATCH:
                break
        return out

    # -- reads -----------------------------------------------------------------------

    def get(self, session_id: str) -> Record | None:
        def run(cur: psycopg.Cursor[Any]) -> Any:
            cur.execute(f"SELECT record FROM {SESSIONS} WHERE session_id = %s", (session_id,))
            return cur.fetchone()

        row = self._run(run)
        return None if row is None else dict(row[0])

    def _list(
        self, status: str | None, agent: str | None, tenant: str | None, limit: int
    ) -> list[Record]:
        where, args = [], []
        for column, value in (("status", status), ("agent", agent), ("tenant", tenant)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""

        def run(cur: psycopg.Cursor[Any]) -> list[Any]:
            cur.execute(
                f"SELECT {_COLUMNS} FROM {SESSIONS} {clause} "
                "ORDER BY created_at DESC, session_id DESC LIMIT %s",
                (*args, limit),
            )
            return cur.fetchall()

        return [dict(zip(SUMMARY_FIELDS, row, strict=True)) for row in self._run(run)]

    def checkpoints(self, session_id: str) -> builtins.list[Record]:
        """Every record written for ``session_id``, oldest first (deleted ones too)."""

        def run(cur: psycopg.Cursor[Any]) -> builtins.list[Any]:
            cur.execute(
                f"SELECT record FROM {CHECKPOINTS} WHERE session_id = %s ORDER BY id",
                (session_id,),
            )
            return cur.fetchall()

        return [dict(row[0]) for row in self._run(run)]

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _row(stored: Record) -> tuple[Any, ...]:
    check_record(stored)
    s = summary(stored)
    return (*(s[f] for f in SUMMARY_FIELDS), stored["version"], Json(stored, dumps))


def _checkpoint(cur: psycopg.Cursor[Any], stored: Record, now: float) -> None:
    cur.execute(
        f"INSERT INTO {CHECKPOINTS} (session_id, version, status, written_at, record) "
        "VALUES (%s, %s, %s, %s, %s)",
        (stored["session_id"], stored["version"], stored["status"], now, Json(stored, dumps)),
    )


#: History rows older than the horizon whose session has no current record and no
#: row as young (a deleted session's: an id taken again keeps its new history).
_ORPHANS = (
    f"SELECT c.id FROM {CHECKPOINTS} c WHERE c.written_at < %s "
    f"AND NOT EXISTS (SELECT 1 FROM {SESSIONS} s WHERE s.session_id = c.session_id) "
    f"AND NOT EXISTS (SELECT 1 FROM {CHECKPOINTS} n WHERE n.session_id = c.session_id "
    "AND n.written_at >= %s)"
)


def _count_prunable(
    cur: psycopg.Cursor[Any], final: list[str], horizon: float, limit: int
) -> tuple[int, int]:
    """What prune would delete: (sessions, history rows)."""
    cur.execute(
        f"WITH doomed AS (SELECT session_id FROM {SESSIONS} WHERE status = ANY(%s) "
        "AND updated_at < %s ORDER BY updated_at LIMIT %s) "
        "SELECT (SELECT count(*) FROM doomed), "
        f"(SELECT count(*) FROM {CHECKPOINTS} WHERE session_id IN "
        "(SELECT session_id FROM doomed)), "
        f"(SELECT count(*) FROM ({_ORPHANS}) o)",
        (final, horizon, limit, horizon, horizon),
    )
    row = cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1]) + int(row[2])


def masked(url: str) -> str:
    """The URL to show: its password as ``**``, its query (which may hold one) left out.

    By hand, not kombu's ``maybe_sanitize_url``, which raises on a URL whose port is
    not a number (a traceback where the store's one-line error was due)."""
    head = url.split("?", 1)[0]
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^/@:]*:)[^/]*@", r"\1**@", head, flags=re.I)


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), repr(exc))

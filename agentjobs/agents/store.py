"""Where a session's record lives: the interface both backends implement.

A session record is one JSON object (a ``dict``), written whole at each checkpoint.
The store knows only the fields it indexes and summarises; the rest belongs to the
loop (``agentjobs/agents/record.py`` documents the whole shape):

- ``session_id`` (str), ``agent`` (the agent running now), ``tenant`` (str or None),
  ``status`` (``running``, ``waiting_approval``, ``completed``, ``stopped``,
  ``failed``, ``cancelled``), ``stop_reason`` (str or None), ``created_at`` and
  ``updated_at`` (Unix seconds), ``steps`` and ``tool_calls`` (lists),
  ``cost_usd`` (float), and ``version`` (int, owned by the store).

Every write is checked against the version the writer read, so two copies of one step
(a redelivered task beside the original) cannot both apply: the second gets
``VersionConflict`` and re-reads. ``update`` is that loop.

Two backends: the state store (Redis, the default; ``redis_store.py``) and PostgreSQL
(``AGENTJOBS_SESSION_STORE=postgresql://...``; ``postgres_store.py``).

Retention is the same in both: a session that has ended (``FINAL``) is removed
``AGENTJOBS_SESSION_RETENTION_S`` after its last write (in PostgreSQL with its
checkpoint history); one running or waiting for approval is never removed, however
old. Redis does it with TTLs, PostgreSQL with ``prune``, which workers run
(``retention.py``).
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentjobs.errors import AgentJobsError, RequestError

Record = dict[str, Any]

#: The statuses a session can have; the last four are final.
STATUSES = ("running", "waiting_approval", "completed", "stopped", "failed", "cancelled")
FINAL = frozenset({"completed", "stopped", "failed", "cancelled"})

#: The fields of a summary (``list``), in this order.
SUMMARY_FIELDS = (
    "session_id",
    "agent",
    "tenant",
    "status",
    "stop_reason",
    "steps",
    "tool_calls",
    "cost_usd",
    "created_at",
    "updated_at",
)


class SessionNotFound(AgentJobsError):
    """No session has this id (or it outlived the store's retention)."""


class SessionExists(AgentJobsError):
    """``create`` with an id that is taken."""


class VersionConflict(AgentJobsError):
    """The record changed since the writer read it: re-read and decide again."""


def summary(record: Record) -> Record:
    """The summary of a record: counts instead of the lists."""
    out = {k: record.get(k) for k in SUMMARY_FIELDS}
    out["steps"] = len(record.get("steps") or ())
    out["tool_calls"] = len(record.get("tool_calls") or ())
    out["cost_usd"] = float(record.get("cost_usd") or 0.0)
    return out


def check_status(status: str | None) -> None:
    """Refuse a status filter that no session can have (every backend)."""
    if status is not None and status not in STATUSES:
        raise RequestError(f"unknown status {status!r} (one of {', '.join(STATUSES)})")


def check_record(stored: Record) -> None:
    """Refuse to write a record whose status is none of STATUSES (every backend)."""
    if stored.get("status") not in STATUSES:
        raise RequestError(
            f"session {stored.get('session_id')!r}: unknown status {stored.get('status')!r}"
        )


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Pruned:
    """What a ``prune`` removed (or, in a dry run, would remove)."""

    sessions: int = 0  # ended sessions past the retention
    checkpoints: int = 0  # their history rows (PostgreSQL), deleted sessions' too

    def as_dict(self) -> dict[str, int]:
        return {"sessions": self.sessions, "checkpoints": self.checkpoints}


class SessionStore(abc.ABC):
    """One record per session id, written with a version check."""

    @abc.abstractmethod
    def create(self, record: Record) -> Record:
        """Store a new record (its ``version`` becomes 1); the stored record.

        Raises SessionExists when the id is taken.
        """

    @abc.abstractmethod
    def get(self, session_id: str) -> Record | None:
        """The record, or None."""

    @abc.abstractmethod
    def put(self, record: Record) -> Record:
        """Replace the record if its ``version`` is still the stored one; the stored
        record, with ``version`` one higher.

        Raises VersionConflict when another write came first, SessionNotFound when
        there is no such record.
        """

    @abc.abstractmethod
    def _list(
        self, status: str | None, agent: str | None, tenant: str | None, limit: int
    ) -> list[Record]:
        """``list`` once its arguments are checked (``limit`` > 0)."""

    def list(
        self,
        *,
        status: str | None = None,
        agent: str | None = None,
        tenant: str | None = None,
        limit: int = 50,
    ) -> list[Record]:
        """Summaries (``summary``), newest first; RequestError for an unknown status."""
        check_status(status)
        if limit <= 0:
            return []
        return self._list(status, agent, tenant, limit)

    @abc.abstractmethod
    def delete(self, session_id: str) -> bool:
        """Remove a record; whether there was one."""

    @abc.abstractmethod
    def prune(
        self, *, now: float | None = None, dry_run: bool = False, limit: int = 10_000
    ) -> Pruned:
        """Remove what the retention no longer keeps (the module doc), at most about
        ``limit`` sessions in one call; ``now`` (default the clock) is compared with
        each record's ``updated_at``. Never a session running or waiting for approval.
        """

    def migrate(self) -> None:  # noqa: B027 (a backend with no schema has nothing to do)
        """Create what the backend needs (tables, indexes); safe to run again."""

    def load(self, session_id: str) -> Record:
        """The record; SessionNotFound when there is none."""
        record = self.get(session_id)
        if record is None:
            raise SessionNotFound(f"no session {session_id!r}")
        return record

    def update(
        self, session_id: str, change: Callable[[Record], Record | None], attempts: int = 50
    ) -> Record:
        """Read, ``change`` (which edits the record it is given, or returns None to
        write nothing), write with the version check; again on a conflict.

        Returns the stored record (unchanged when ``change`` returned None). ``change``
        may run more than once, so it must decide from the record alone.
        """
        for _ in range(attempts):
            record = self.load(session_id)
            changed = change(record)
            if changed is None:
                return record
            try:
                return self.put(changed)
            except VersionConflict:
                continue
        raise VersionConflict(f"session {session_id!r}: {attempts} writes lost the race")

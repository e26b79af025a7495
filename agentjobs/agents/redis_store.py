"""Session records in the state store (Redis): the default backend.

One hash per session (``{p}:session:{id}``: the record JSON, its summary, version,
status and the token of the write that stored it), and zsets by ``created_at``
for ``list``: every session (``{p}:sessions``) and one per status
(``{p}:sessions:status:{status}``). agentjobs/keys.py lists them.

Each write is one Lua call (``scripts/session_write.lua``) that checks the version, so
two copies of a step cannot both apply. A write is retried across a Redis restart
(``store.retrying``) with the same token, so a write that landed but whose reply was
lost is recognised as itself instead of conflicting with itself.

Retention (``store.py``): a record written with a final status gets a TTL of
``AGENTJOBS_SESSION_RETENTION_S`` (each later write pushes it out); one running or
waiting for approval has none, so a session waiting for a person is never dropped (a
replay re-opening an ended one clears its TTL again).

An expired record leaves its id in the indexes; ``list`` drops the ones it meets, each
``create`` drops a few of those old enough to have expired, and ``prune`` (the
workers', ``retention.py``) more, so the indexes stay as large as the live records.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import redis

from agentjobs.agents.store import (
    FINAL,
    STATUSES,
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
from agentjobs.keys import key
from agentjobs.settings import get_settings
from agentjobs.store import lua, retrying, script, state_redis

_WRITE = lua("agentjobs.agents", "session_write.lua")

#: Expired ids a create looks for in the index (oldest first), at most.
_SWEEP = 20


def record_key(session_id: str) -> str:
    return key("session", session_id)


def index_key() -> str:
    return key("sessions")


def status_key(status: str) -> str:
    return key("sessions", "status", status)


def _status_keys() -> list[str]:
    return [status_key(s) for s in STATUSES]


class RedisSessionStore(SessionStore):
    """Session records in the state store; ``client`` None means ``state_redis()``."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self._client = client

    @property
    def client(self) -> redis.Redis:
        return self._client or state_redis()

    # -- writes ----------------------------------------------------------------------

    def create(self, record: Record) -> Record:
        now = time.time()
        stored = dict(record)
        stored["version"] = 1
        stored.setdefault("created_at", now)
        stored["updated_at"] = now
        reply = self._write("create", 0, stored)
        if reply[0] == b"exists":
            raise SessionExists(f"session {stored['session_id']!r} exists")
        self._sweep(now)
        return stored

    def put(self, record: Record) -> Record:
        read = int(record["version"])
        stored = dict(record)
        stored["version"] = read + 1
        stored["updated_at"] = time.time()
        reply = self._write("put", read, stored)
        if reply[0] == b"missing":
            raise SessionNotFound(f"no session {stored['session_id']!r}")
        if reply[0] == b"conflict":
            raise VersionConflict(
                f"session {stored['session_id']!r}: version {read} was read, "
                f"{int(reply[1])} is stored"
            )
        return stored

    def _write(self, mode: str, read: int, stored: Record) -> list[Any]:
        check_record(stored)
        session_id = str(stored["session_id"])
        status = stored["status"]
        # Only an ended session expires (store.py's retention); 0: no TTL.
        ttl_ms = max(1, int(get_settings().session_retention_s * 1000)) if status in FINAL else 0
        args = [
            mode,
            read,
            dumps(stored),
            dumps(summary(stored)),
            STATUSES.index(status) + 1,
            float(stored.get("created_at") or stored["updated_at"]),
            ttl_ms,
            uuid.uuid4().hex,  # one token for every retry of this write
            session_id,
        ]
        keys = [record_key(session_id), index_key(), *_status_keys()]
        client = self.client
        return retrying(lambda: script(client, _WRITE)(keys=keys, args=args))

    def delete(self, session_id: str) -> bool:
        def run() -> Any:
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(record_key(session_id))
            self._unindex(pipe, [session_id])
            return pipe.execute()[0]

        return bool(retrying(run))

    def _unindex(self, pipe: Any, ids: list[str]) -> None:
        pipe.zrem(index_key(), *ids)
        for k in _status_keys():
            pipe.zrem(k, *ids)

    def _sweep(self, now: float, limit: int = _SWEEP, dry_run: bool = False) -> int:
        """Drop from the indexes up to ``limit`` ids whose records expired; how many.

        Only a record created more than the retention ago can have expired (a write
        pushes its TTL out): the candidates are the oldest of ``{p}:sessions``. Live
        ones among them (running or waiting for approval, which never expire, or ended
        and written since) are stepped over, up to ``2 * limit`` looks in all.
        """
        horizon = now - get_settings().session_retention_s
        gone, skip, budget = 0, 0, 2 * limit
        while gone < limit and budget > 0:
            old = self.client.zrangebyscore(
                index_key(), "-inf", horizon, start=skip, num=min(500, limit - gone, budget)
            )
            if not old:
                break
            budget -= len(old)
            pipe = self.client.pipeline(transaction=False)
            for member in old:
                pipe.exists(record_key(member.decode()))
            alive = pipe.execute()
            found = [m.decode() for m, a in zip(old, alive, strict=True) if not a]
            if found and not dry_run:
                pipe = self.client.pipeline(transaction=False)
                self._unindex(pipe, found)
                pipe.execute()
            gone += len(found)
            skip += len(old) - (0 if dry_run else len(found))
        return gone

    def prune(
        self, *, now: float | None = None, dry_run: bool = False, limit: int = 10_000
    ) -> Pruned:
        """The records expire by themselves (their TTL): the ids they left in the
        indexes are dropped, the oldest first."""
        t = time.time() if now is None else now
        return Pruned(sessions=retrying(lambda: self._sweep(t, limit, dry_run)))

    # -- reads -----------------------------------------------------------------------

    def get(self, session_id: str) -> Record | None:
        raw = retrying(lambda: self.client.hget(record_key(session_id), "record"))
        return None if raw is None else json.loads(raw)

    def _list(
        self, status: str | None, agent: str | None, tenant: str | None, limit: int
    ) -> list[Record]:
        index = status_key(status) if status else index_key()
        page = max(limit, 100)
        out: list[Record] = []
        start = 0
        while len(out) < limit:
            ids = [m.decode() for m in self.client.zrevrange(index, start, start + page - 1)]
            if not ids:
                break
            start += len(ids)
            pipe = self.client.pipeline(transaction=False)
            for session_id in ids:
                pipe.hget(record_key(session_id), "summary")
            gone = []
            for session_id, raw in zip(ids, pipe.execute(), strict=True):
                if raw is None:
                    gone.append(session_id)
                    continue
                row = json.loads(raw)
                if agent is not None and row.get("agent") != agent:
                    continue
                if tenant is not None and row.get("tenant") != tenant:
                    continue
                out.append(row)
                if len(out) == limit:
                    break
            if gone:
                pipe = self.client.pipeline(transaction=False)
                self._unindex(pipe, gone)
                pipe.execute()
                start -= len(gone)  # the page after them moved up
        return out

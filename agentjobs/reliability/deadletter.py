"""The dead-letter store: every task that gave up, kept whole, listed, replayed, purged.

A dead letter holds the request as submitted, the error that ended it (class, kind,
message, status), every attempt's error and time, the queue, worker, task id and the
idempotency key. Its id is derived from the idempotency key, so a key has at most one
dead letter: a replay that fails again updates it instead of adding a second.

Redis keys (``keys.py``): ``{p}:dlq:{id}`` (record JSON, expires after
``AGENTJOBS_DLQ_MAX_AGE_S``) and ``{p}:dlq:index`` (sorted set of ids by time of death).
Retention is bounded by age and by count (``AGENTJOBS_DLQ_MAX_RECORDS``, oldest dropped
first), enforced on every write.

Replay sends the request again with the same idempotency key; the worker that succeeds
removes the record in the same Lua call that stores the result (``idempotency.finish``).

Functions take the state store as ``client`` and the settings as ``settings``
(keywords; the process's when not given), so a test can hand in its own.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

import redis
from pydantic import BaseModel, ConfigDict

from agentjobs import store
from agentjobs.keys import dead_letter_id, dead_letter_index, dead_letter_key
from agentjobs.reliability import idempotency
from agentjobs.settings import Settings, get_settings
from agentjobs.store import state_redis


class Attempt(BaseModel):
    """One failed call of a task (or a refusal before the call)."""

    model_config = ConfigDict(extra="allow")

    n: int
    started_at: float
    at: float
    error_class: str
    kind: str
    message: str
    status: int | None = None
    #: Did it use up one of the policy's attempts (429s do not)?
    counted: bool = True
    action: str = ""
    worker: str = ""
    task_id: str = ""


class DeadLetter(BaseModel):
    """One dead-lettered task."""

    model_config = ConfigDict(extra="allow")

    id: str
    created_at: float
    request: dict[str, Any]
    error_class: str
    error_kind: str
    message: str
    status: int | None = None
    reason: str
    attempts: list[Attempt]
    queue: str
    worker: str
    task_id: str
    idempotency_key: str
    group: str | None = None
    state: Literal["dead", "replaying"] = "dead"
    replays: int = 0
    replay_task_id: str | None = None

    def summary(self) -> str:
        return f"{self.error_class}: {self.message}"


dead_letter_id = dead_letter_id
record_key = dead_letter_key
index_key = dead_letter_index


def add(
    record: DeadLetter,
    now: float | None = None,
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> str:
    """Store a dead letter (replacing the key's earlier one) and enforce retention."""
    r = client or state_redis()
    s = settings or get_settings()
    now = time.time() if now is None else now
    old = get(record.id, client=r)
    if old is not None:  # a replay that failed again: keep the replay count
        record = record.model_copy(update={"replays": old.replays})

    def write() -> None:
        pipe = r.pipeline()
        pipe.set(record_key(record.id), record.model_dump_json(), ex=max(1, int(s.dlq_max_age_s)))
        pipe.zadd(index_key(), {record.id: record.created_at})
        pipe.execute()

    store.retrying(write)
    trim(now, client=r, settings=s)
    return record.id


def trim(
    now: float | None = None,
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> int:
    """Drop records past the age limit and the oldest past the count limit; how many."""
    r = client or state_redis()
    s = settings or get_settings()
    now = time.time() if now is None else now
    stale = [i.decode() for i in r.zrangebyscore(index_key(), "-inf", now - s.dlq_max_age_s)]
    excess = r.zcard(index_key()) - len(stale) - s.dlq_max_records
    if excess > 0:
        oldest = r.zrange(index_key(), len(stale), len(stale) + excess - 1)
        stale += [i.decode() for i in oldest]
    _delete(stale, r)
    return len(stale)


def _delete(ids: list[str], r: redis.Redis) -> None:
    if not ids:
        return
    pipe = r.pipeline()
    for dl_id in ids:
        pipe.delete(record_key(dl_id))
    pipe.zrem(index_key(), *ids)
    pipe.execute()


def get(dl_id: str, *, client: redis.Redis | None = None) -> DeadLetter | None:
    raw = (client or state_redis()).get(record_key(dl_id))
    return None if raw is None else DeadLetter.model_validate_json(raw)


def count(*, client: redis.Redis | None = None) -> int:
    return int((client or state_redis()).zcard(index_key()))


def ids(
    offset: int = 0,
    limit: int | None = None,
    newest_first: bool = True,
    *,
    client: redis.Redis | None = None,
) -> list[str]:
    end = -1 if limit is None else offset + limit - 1
    r = client or state_redis()
    raw = (
        r.zrevrange(index_key(), offset, end)
        if newest_first
        else r.zrange(index_key(), offset, end)
    )
    return [i.decode() for i in raw]


def records(
    offset: int = 0,
    limit: int | None = None,
    queue: str | None = None,
    error: str | None = None,
    newest_first: bool = True,
    *,
    client: redis.Redis | None = None,
) -> Iterator[DeadLetter]:
    """Dead letters, newest first, optionally only one queue or error class/kind."""
    r = client or state_redis()
    for batch in _batches(ids(offset, limit, newest_first, client=r), 500):
        raws = r.mget([record_key(i) for i in batch])
        for raw in raws:
            if raw is None:  # expired between the index read and now
                continue
            rec = DeadLetter.model_validate_json(raw)
            if queue is not None and rec.queue != queue:
                continue
            if error is not None and error not in (rec.error_class, rec.error_kind):
                continue
            yield rec


def _batches(items: list[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


def remove(dl_id: str, *, client: redis.Redis | None = None) -> bool:
    """Delete one record and the failed outcome it left on its key; False if unknown."""
    r = client or state_redis()
    rec = get(dl_id, client=r)
    _delete([dl_id], r)
    if rec is None:
        return False
    _forget_failure(rec, r)
    return True


def purge(
    ids_: Iterable[str] | None = None,
    older_than_s: float | None = None,
    queue: str | None = None,
    *,
    client: redis.Redis | None = None,
) -> int:
    """Delete the given records, or all matching ``older_than_s``/``queue``; how many."""
    r = client or state_redis()
    if ids_ is None:
        cutoff = None if older_than_s is None else time.time() - older_than_s
        chosen = [
            rec.id
            for rec in records(queue=queue, client=r)
            if cutoff is None or rec.created_at <= cutoff
        ]
    else:
        chosen = list(ids_)
    return sum(remove(i, client=r) for i in chosen)


def _forget_failure(rec: DeadLetter, r: redis.Redis) -> None:
    # The key's outcome says "dead-lettered as <id>": without the record it would make
    # every resubmission fail, so it goes too (a success stored since stays).
    out = idempotency.outcome(rec.idempotency_key, client=r)
    if out is not None and out.get("dead_letter") == rec.id:
        idempotency.forget(rec.idempotency_key, client=r)


def export(out: Any, queue: str | None = None, *, client: redis.Redis | None = None) -> int:
    """Write every record as one JSON line to the text stream ``out``; how many."""
    n = 0
    for rec in records(queue=queue, newest_first=False, client=client):
        out.write(rec.model_dump_json() + "\n")
        n += 1
    return n


# -- replay ---------------------------------------------------------------------------


def replay_one(dl_id: str, submit: Callable[..., Any], *, client: redis.Redis | None = None) -> Any:
    """Send a dead letter's request again with its idempotency key through ``submit``
    (``complete.apply_async``); what it returns (the AsyncResult).

    The record stays, marked ``replaying``, until a worker succeeds with that key
    (the worker removes it); a new failure rewrites it as ``dead``. A send that raises
    (the broker down) puts the record back as it was, so it never shows a replay
    whose task was not sent; the exception goes on to the caller.
    """
    r = client or state_redis()
    rec = get(dl_id, client=r)
    if rec is None:
        raise KeyError(dl_id)
    task_id = str(uuid.uuid4())
    marked = rec.model_copy(
        update={"state": "replaying", "replays": rec.replays + 1, "replay_task_id": task_id}
    )
    r.set(record_key(dl_id), marked.model_dump_json(), keepttl=True)
    _forget_failure(rec, r)
    kwargs = {**rec.request, "idempotency_key": rec.idempotency_key}
    try:
        return submit(kwargs=kwargs, task_id=task_id)
    except BaseException:
        # Marked before the send, so a worker that finishes at once finds the mark.
        with contextlib.suppress(redis.RedisError):
            r.set(record_key(dl_id), rec.model_dump_json(), keepttl=True)
        raise


def to_json(rec: DeadLetter) -> dict[str, Any]:
    return json.loads(rec.model_dump_json())

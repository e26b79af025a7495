"""The batch lane's records in the state store (keys.py lists them).

A request waits as one record per ``custom_id`` (derived from its idempotency key):
``{p}:batch:req`` holds what is sent and who asked, ``{p}:batch:tasks:{cid}`` the
tasks waiting for its answer, ``{p}:batch:where`` where it is (``pending``, or the local
id of the open batch holding it) and ``{p}:batch:pending:{group}`` the group's waiting
requests by age. ``{p}:batch:open`` holds each batch from the moment its requests are
taken (``submitting``, before the create call) until every answer is written
(``in_progress``, then gone). A worker killed between two of these writes leaves a state
the next batcher reads and finishes: nothing is kept only in a process.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import redis

from agentjobs import catalog, store
from agentjobs.keys import key as rkey
from agentjobs.reliability import idempotency
from agentjobs.store import state_redis

_ENQUEUE = store.lua("agentjobs.lanes", "batch_enqueue.lua")
_CLOSE = store.lua("agentjobs.lanes", "batch_close.lua")

PENDING = "pending"


def custom_id(idempotency_key: str) -> str:
    """The ``custom_id`` of a key: stable, unique per key, and within the API's
    1-64 characters of ``[a-zA-Z0-9_-]`` whatever the key holds."""
    return "aj_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:48]


def req_key() -> str:
    return rkey("batch", "req")


def where_key() -> str:
    return rkey("batch", "where")


def pending_key(group: str) -> str:
    return rkey("batch", "pending", group)


def tasks_key(cid: str) -> str:
    return rkey("batch", "tasks", cid)


def open_key() -> str:
    return rkey("batch", "open")


def lock_key() -> str:
    return rkey("batch", "lock")


def stats_key() -> str:
    return rkey("batch", "stats")


def groups() -> list[str]:
    """Every rate-limit group of the catalog: the pending sets there may be."""
    return sorted({m.group for m in catalog.models().values()})


def _r(client: redis.Redis | None) -> redis.Redis:
    return client or state_redis()


def enqueue(rec: dict[str, Any], task_id: str, *, client: redis.Redis | None = None) -> int:
    """Queue ``rec`` (its ``cid``, ``k``, ``group``...) for ``task_id``: 1 queued, 0 joined
    a request of the same key already waiting, -1 the key has an outcome."""
    r = _r(client)
    cid = rec["cid"]
    keys = [
        req_key(),
        where_key(),
        pending_key(rec["group"]),
        tasks_key(cid),
        idempotency.outcome_key(rec["k"]),
    ]
    body = json.dumps(rec, separators=(",", ":"))
    script = store.script(r, _ENQUEUE)
    return int(store.retrying(lambda: script(keys=keys, args=[cid, body, rec["at"], task_id])))


def pending(group: str, limit: int, *, client: redis.Redis | None = None) -> list[str]:
    """The group's waiting custom_ids, oldest first."""
    return [c.decode() for c in _r(client).zrange(pending_key(group), 0, limit - 1)]


def oldest(group: str, *, client: redis.Redis | None = None) -> float | None:
    got = _r(client).zrange(pending_key(group), 0, 0, withscores=True)
    return float(got[0][1]) if got else None


def requests(cids: list[str], *, client: redis.Redis | None = None) -> dict[str, dict[str, Any]]:
    if not cids:
        return {}
    raw = _r(client).hmget(req_key(), cids)
    return {c: json.loads(v) for c, v in zip(cids, raw, strict=True) if v is not None}


def where(cids: list[str], *, client: redis.Redis | None = None) -> dict[str, str | None]:
    if not cids:
        return {}
    raw = _r(client).hmget(where_key(), cids)
    return {c: (v.decode() if v is not None else None) for c, v in zip(cids, raw, strict=True)}


def take(
    group: str,
    reqs: dict[str, dict[str, Any]],
    batch: dict[str, Any],
    *,
    client: redis.Redis | None = None,
) -> None:
    """Move ``reqs`` out of the group's pending set into the open batch ``batch`` (state
    ``submitting``), in one transaction: each request is in exactly one place."""
    r = _r(client)
    pipe = r.pipeline(transaction=True)
    cids = list(reqs)
    pipe.zrem(pending_key(group), *cids)
    pipe.hset(where_key(), mapping=dict.fromkeys(cids, batch["local"]))
    pipe.hset(req_key(), mapping={c: json.dumps(v, separators=(",", ":")) for c, v in reqs.items()})
    pipe.hset(open_key(), batch["local"], json.dumps(batch, separators=(",", ":")))
    store.retrying(pipe.execute)


def save_open(batch: dict[str, Any], *, client: redis.Redis | None = None) -> None:
    store.retrying(
        lambda: _r(client).hset(
            open_key(), batch["local"], json.dumps(batch, separators=(",", ":"))
        )
    )


def open_batches(*, client: redis.Redis | None = None) -> list[dict[str, Any]]:
    """Every open batch, oldest first."""
    raw = _r(client).hgetall(open_key())
    return sorted((json.loads(v) for v in raw.values()), key=lambda b: b["at"])


def drop_open(local: str, *, client: redis.Redis | None = None) -> None:
    store.retrying(lambda: _r(client).hdel(open_key(), local))


def requeue(
    cid: str, rec: dict[str, Any], *, now: float | None = None, client: redis.Redis | None = None
) -> None:
    """Put a request back among its group's pending ones (resubmitted in a later batch)."""
    r = _r(client)
    pipe = r.pipeline(transaction=True)
    pipe.hset(req_key(), cid, json.dumps(rec, separators=(",", ":")))
    pipe.hset(where_key(), cid, PENDING)
    pipe.zadd(pending_key(rec["group"]), {cid: now if now is not None else time.time()})
    store.retrying(pipe.execute)


def task_ids(cid: str, *, client: redis.Redis | None = None) -> list[str]:
    return sorted(t.decode() for t in _r(client).smembers(tasks_key(cid)))


def close(cid: str, answered: list[str], *, client: redis.Redis | None = None) -> list[str]:
    """End ``cid`` once ``answered`` were given its outcome; the tasks still waiting."""
    r = _r(client)
    script = store.script(r, _CLOSE)
    keys = [req_key(), where_key(), tasks_key(cid)]
    left = store.retrying(lambda: script(keys=keys, args=[cid, *answered]))
    return [t.decode() if isinstance(t, bytes) else str(t) for t in left]


def count(field: str, n: float = 1, *, client: redis.Redis | None = None) -> None:
    r = _r(client)
    if isinstance(n, int):
        r.hincrby(stats_key(), field, n)
    else:
        r.hincrbyfloat(stats_key(), field, n)


def overview(*, client: redis.Redis | None = None, now: float | None = None) -> dict[str, Any]:
    """What the lane holds now: requests waiting per group and the oldest one's age,
    open batches by state, and the lane's counters (cost saved among them)."""
    r = _r(client)
    t = time.time() if now is None else now
    waiting: dict[str, int] = {}
    oldest_age = 0.0
    for g in groups():
        n = int(r.zcard(pending_key(g)))
        if n:
            waiting[g] = n
            first = oldest(g, client=r)
            if first is not None:
                oldest_age = max(oldest_age, t - first)
    by_state: dict[str, int] = {}
    opened = open_batches(client=r)
    for b in opened:
        by_state[b["state"]] = by_state.get(b["state"], 0) + 1
    stats = {k.decode(): float(v) for k, v in r.hgetall(stats_key()).items()}
    return {
        "waiting": waiting,
        "waiting_total": sum(waiting.values()),
        "oldest_age_s": round(oldest_age, 3),
        "open_by_state": by_state,
        "open": opened,
        "stats": stats,
    }


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()

"""The submit ledger: every published task until its idempotency key reaches an outcome.

kombu's Redis transport pops a message (``BRPOP``) and records it as unacknowledged in
a second round trip (``QoS.append``: ``ZADD unacked_index`` + ``HSET unacked``). A
worker killed, or a Redis going down, between the two loses the message: it is neither
queued nor unacked, and no visibility timeout brings it back. kombu has no setting
that closes this window. The ledger is what makes such a task findable again:

- ``record`` runs in the caller right after a publish returned (``ClaudeTask.apply_async``,
  so retries too): task id -> queue, idempotency key, time, and its kwargs. One Redis
  round trip (MULTI: ``HSET`` x 2 + ``ZADD``). A failed publish leaves no entry; a
  state store that is down costs a warning, never the submit.
- The entry is removed by the idempotency scripts (idempotency.py) in the same Lua call
  that stores the key's outcome, or that finds it already stored.
- ``sweeper.py`` re-sends entries found nowhere (not queued, not unacked, not leased).

Only for a Redis broker: RabbitMQ has no such window (a delivery is unacked at once).

Redis keys (keys.py): ``{p}:ledger`` hash (task id -> entry JSON, small: the sweeper
reads many), ``{p}:ledger:kwargs`` hash (task id -> kwargs JSON, read only to re-send),
``{p}:ledger:times`` zset (task id by time recorded), ``{p}:ledger:stats`` hash
(``resent``, ``expired``), ``{p}:ledger:lock`` string (the sweeper's lock).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from agentjobs import store
from agentjobs.call import idempotency_key
from agentjobs.keys import key as rkey
from agentjobs.keys import ledger_keys
from agentjobs.settings import get_settings

log = logging.getLogger(__name__)

#: Broker URL schemes served by kombu's Redis transport (sentinel is the same transport).
REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "sentinel://")


def entries_key() -> str:
    return ledger_keys()[0]


def kwargs_key() -> str:
    return ledger_keys()[1]


def times_key() -> str:
    return ledger_keys()[2]


def stats_key() -> str:
    return rkey("ledger", "stats")


def lock_key() -> str:
    return rkey("ledger", "lock")


@dataclass(frozen=True)
class Entry:
    """One published task: what is needed to send it again."""

    task_id: str
    sent_at: float  # epoch seconds, after the publish returned (>= the message's header)
    queue: str
    key: str  # idempotency key
    resent: int = 0
    kwargs: dict[str, Any] | None = None  # read only when asked for (``get``)

    def dumps(self) -> str:
        body: dict[str, Any] = {"t": self.sent_at, "q": self.queue, "k": self.key}
        if self.resent:
            body["r"] = self.resent
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def loads(cls, task_id: str, raw: bytes | str, kwargs: bytes | None = None) -> Entry:
        d = json.loads(raw)
        kw = json.loads(kwargs) if kwargs is not None else None
        return cls(task_id, float(d["t"]), d["q"], d["k"], int(d.get("r", 0)), kw)


def is_redis_broker(url: Any) -> bool:
    """Is ``url`` (a Celery ``broker_url``: a string, a list or ``a;b`` failover) Redis?"""
    first = url[0] if isinstance(url, list | tuple) and url else url
    if not isinstance(first, str):
        return False
    return first.split(";", 1)[0].strip().lower().startswith(REDIS_SCHEMES)


def enabled(app: Any) -> bool:
    """Record for this app? The setting is on, its broker is Redis, tasks are not eager
    (an eager task has already run and ended when its apply_async returns)."""
    conf = app.conf
    return (
        get_settings().ledger_enabled
        and is_redis_broker(conf.broker_url)
        and not conf.task_always_eager
    )


@store.per_process
def _client_for(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)


def client() -> redis.Redis:
    """The ledger's client of the state store: one of its own with short timeouts, since
    a state store that hangs (not refusing connections) must not hang every submit for
    the kernel's TCP timeout."""
    return _client_for(get_settings().redis_url)


def record(
    task_id: str,
    kwargs: dict[str, Any],
    queue: str,
    *,
    resent: int = 0,
    now: Callable[[], float] = time.time,
) -> bool:
    """Add (or refresh) ``task_id``'s entry; best effort: False and a warning if the
    state store cannot be written. Call it after the publish returned."""
    entry = Entry(task_id, now(), queue, idempotency_key(kwargs, task_id), resent)
    try:
        pipe = client().pipeline(transaction=True)
        pipe.hset(entries_key(), task_id, entry.dumps())
        pipe.hset(kwargs_key(), task_id, json.dumps(kwargs, separators=(",", ":")))
        pipe.zadd(times_key(), {task_id: entry.sent_at})
        pipe.execute()
    except redis.RedisError as exc:
        log.warning(
            "task %s was sent, but the submit ledger could not record it (%s): a message "
            "lost by the broker before a worker recorded it would not be re-sent",
            task_id,
            exc,
        )
        return False
    return True


def remove(task_ids: Iterable[str]) -> None:
    ids = list(task_ids)
    if not ids:
        return
    pipe = client().pipeline(transaction=True)
    pipe.hdel(entries_key(), *ids)
    pipe.hdel(kwargs_key(), *ids)
    pipe.zrem(times_key(), *ids)
    pipe.execute()


def older_than(t: float, limit: int = 10_000) -> list[str]:
    """Task ids recorded before ``t`` (oldest first)."""
    raw = client().zrangebyscore(times_key(), "-inf", f"({t}", start=0, num=limit)
    return [r.decode() for r in raw]


def get(task_ids: list[str], with_kwargs: bool = False) -> dict[str, Entry]:
    """The entries of ``task_ids`` still in the ledger (their kwargs too if asked)."""
    if not task_ids:
        return {}
    raws = client().hmget(entries_key(), task_ids)
    kws = client().hmget(kwargs_key(), task_ids) if with_kwargs else [None] * len(task_ids)
    return {
        t: Entry.loads(t, r, kw)
        for t, r, kw in zip(task_ids, raws, kws, strict=True)
        if r is not None and (kw is not None or not with_kwargs)
    }


def size() -> int:
    """Entries in the ledger: tasks published whose key has no outcome yet (in flight)."""
    return int(client().zcard(times_key()))


def ids() -> set[str]:
    return {r.decode() for r in client().zrange(times_key(), 0, -1)}


def stats() -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client().hgetall(stats_key()).items()}


def count(field: str, n: int = 1) -> None:
    if n:
        client().hincrby(stats_key(), field, n)

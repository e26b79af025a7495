"""Idempotency: at most one Claude call in flight per key, and its outcome kept.

Celery on Redis delivers at least once (late acks, the visibility timeout, a killed
worker's messages coming back), and callers resubmit. Every task carries a key (the
caller's ``idempotency_key``, else the task id) and, before calling Claude, claims it:

- ``done``: the key has an outcome (a result, or the dead letter that ended it): the
  copy returns it, no call;
- ``claimed``: this copy holds the **lease** and may call; a heartbeat thread renews
  the lease every third of ``AGENTJOBS_IDEMPOTENCY_LEASE_S`` while the call runs, so a
  lease lapses only when its holder died (``kill -9``, a lost host), and a later copy
  may then proceed;
- ``busy``: another live copy holds the lease: this one polls until the outcome
  appears (bounded by ``AGENTJOBS_IDEMPOTENCY_WAIT_S``), then steps aside.

Redis keys (``keys.py``), ``{k}`` the idempotency key:
``{p}:idem:{k}:lease`` (owner token, PX lease), ``{p}:idem:{k}:out`` (outcome JSON,
result TTL), ``{p}:idem:{k}:attempts`` (list of failed attempts, result TTL).

Functions take the state store as ``client`` and the settings as ``settings``
(keywords; the process's when not given), so a test can hand in its own. A ``Claim``
remembers the store it was taken in and the lease it was given: it is finished in that
store, and the heartbeat renews its lease there, for that long.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import redis

from agentjobs import store
from agentjobs.keys import dead_letter_id, dead_letter_index, dead_letter_key, ledger_keys
from agentjobs.keys import key as rkey
from agentjobs.settings import Settings, get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

_CLAIM = store.lua("agentjobs.reliability", "idempotency_claim.lua")
_FINISH = store.lua("agentjobs.reliability", "idempotency_finish.lua")
_RENEW = store.lua("agentjobs.reliability", "idempotency_renew.lua")


def lease_key(k: str) -> str:
    return rkey("idem", k, "lease")


def outcome_key(k: str) -> str:
    return rkey("idem", k, "out")


def attempts_key(k: str) -> str:
    return rkey("idem", k, "attempts")


def new_token(worker: str, task_id: str) -> str:
    """An owner token unique to one execution (a redelivered copy is another owner)."""
    return f"{worker}|{task_id}|{os.getpid()}|{uuid.uuid4().hex[:12]}"


@dataclass
class Claim:
    """The answer of ``claim``: ``state`` is ``done``, ``claimed`` or ``busy``."""

    key: str
    token: str
    state: str
    outcome: dict[str, Any] | None = None
    waited_s: float = 0.0
    #: Failed attempts of this key before this one (claimed only).
    prior_attempts: int = 0
    #: Milliseconds left on the other copy's lease (busy only).
    lease_left_ms: int = 0
    #: The task claiming (its submit-ledger entry is removed with the outcome).
    task_id: str = ""
    #: The state store the claim was taken in (None: the process's), and the lease it
    #: was given, ms (0: the settings'): the heartbeat renews it there, for that long.
    client: redis.Redis | None = field(default=None, repr=False, compare=False)
    lease_ms: int = 0

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def claimed(self) -> bool:
        return self.state == "claimed"


def _lease_ms(s: Settings) -> int:
    return max(1, int(s.idempotency_lease_s * 1000))


def try_claim(
    k: str,
    token: str,
    task_id: str = "",
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> Claim:
    """One claim attempt (one Lua call); a done key also ends ``task_id``'s ledger entry."""
    script = store.script(client or state_redis(), _CLAIM)
    keys = [outcome_key(k), lease_key(k), attempts_key(k), *ledger_keys()]
    lease_ms = _lease_ms(settings or get_settings())
    args = [token, lease_ms, task_id]
    state, value = store.retrying(lambda: script(keys=keys, args=args))
    state = state.decode() if isinstance(state, bytes) else str(state)
    c = Claim(k, token, state, task_id=task_id, client=client, lease_ms=lease_ms)
    if state == "done":
        c.outcome = json.loads(value)
    elif state == "claimed":
        c.prior_attempts = int(value)
    else:
        c.lease_left_ms = max(0, int(value))
    return c


def claim(
    k: str,
    token: str,
    wait_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    task_id: str = "",
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> Claim:
    """Claim ``k``, polling up to ``wait_s`` while another live copy holds it."""
    s = settings or get_settings()
    wait = s.idempotency_wait_s if wait_s is None else wait_s
    t0 = time.monotonic()
    interval = 0.02
    while True:
        c = try_claim(k, token, task_id, client=client, settings=s)
        c.waited_s = time.monotonic() - t0
        if c.state != "busy" or c.waited_s >= wait:
            return c
        # Polls back off to 0.5 s: 50 copies of one key cost ~100 Redis calls a second.
        sleep(min(interval, max(0.0, wait - c.waited_s)))
        interval = min(interval * 1.5, 0.5)


def finish(c: Claim, outcome: dict[str, Any], ttl_s: float) -> dict[str, Any]:
    """Store the key's outcome (``{"result": ...}`` or ``{"dead_letter": id, ...}``),
    free the lease, drop the attempt history and ``c.task_id``'s submit-ledger entry;
    returns the outcome now stored.

    A success also removes the key's dead letter (a replay that worked).
    """

    success = "result" in outcome
    drop = dead_letter_id(c.key) if success else ""
    keys = [
        outcome_key(c.key),
        lease_key(c.key),
        attempts_key(c.key),
        dead_letter_key(drop or "-"),
        dead_letter_index(),
        *ledger_keys(),
    ]
    body = json.dumps(outcome, separators=(",", ":"))
    args = [c.token, body, max(1, int(ttl_s)), drop, "1" if success else "0", c.task_id]
    script = store.script(c.client or state_redis(), _FINISH)
    stored = store.retrying(lambda: script(keys=keys, args=args))
    return json.loads(stored)


def succeeded(
    c: Claim, result: dict[str, Any], *, settings: Settings | None = None
) -> dict[str, Any]:
    """Store a successful result; returns the key's result (another copy's if it won)."""
    stored = finish(c, {"result": result}, (settings or get_settings()).result_ttl_s)
    return stored["result"]


def release(k: str, token: str, *, client: redis.Redis | None = None) -> None:
    """Give the lease up without an outcome (the task will retry); best effort."""
    r = client or state_redis()
    try:
        store.retrying(lambda: store.unlock(r, lease_key(k), token))
    except redis.RedisError:  # the lease lapses by itself
        log.warning("could not release idempotency lease of %s", k, exc_info=True)


def forget(k: str, *, client: redis.Redis | None = None) -> None:
    """Drop ``k``'s outcome and attempt history (replay of a dead letter, operator purge)."""
    (client or state_redis()).delete(outcome_key(k), attempts_key(k))


def outcome(k: str, *, client: redis.Redis | None = None) -> dict[str, Any] | None:
    raw = (client or state_redis()).get(outcome_key(k))
    return None if raw is None else json.loads(raw)


# -- failed attempts of a key (the retry policy's memory) -----------------------------


def add_attempt(
    k: str,
    attempt: dict[str, Any],
    *,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> None:
    ak = attempts_key(k)
    r = client or state_redis()
    ttl_s = (settings or get_settings()).result_ttl_s

    def push() -> None:
        pipe = r.pipeline()
        pipe.rpush(ak, json.dumps(attempt, separators=(",", ":")))
        pipe.expire(ak, ttl_s)
        pipe.execute()

    store.retrying(push)


def attempts(k: str, *, client: redis.Redis | None = None) -> list[dict[str, Any]]:
    r = client or state_redis()
    raw = store.retrying(lambda: r.lrange(attempts_key(k), 0, -1))
    return [json.loads(x) for x in raw]


# -- the heartbeat -----------------------------------------------------------------


class _Lease(NamedTuple):
    key: str
    token: str
    client: redis.Redis | None
    ms: int


class _Heartbeat:
    """One daemon thread per process renewing every lease this process holds, each in
    the store it was taken in and for its own length, every third of the shortest."""

    def __init__(self) -> None:
        self._held: dict[str, _Lease] = {}  # by lease key
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: The period the thread sleeps now (inf until it has computed one).
        self._period = float("inf")
        self.lost: set[str] = set()

    def add(self, lease: _Lease) -> None:
        with self._lock:
            self._held[lease.key] = lease
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="agentjobs-lease-heartbeat", daemon=True
                )
                self._thread.start()
        # The claim has just set the lease whole, so it needs no renewal now, unless the
        # thread sleeps a period longer than this lease allows (computed for longer
        # leases): then renew at once and restart the period. (Waking on every add cost
        # a pipeline renewing every held lease per task.)
        if lease.ms / 3000.0 < self._period:
            self._wake.set()

    def remove(self, lease: str) -> None:
        with self._lock:
            self._held.pop(lease, None)

    def _run(self) -> None:
        while True:
            with self._lock:
                shortest = min((h.ms for h in self._held.values()), default=None)
            self._period = (shortest or _lease_ms(get_settings())) / 3000.0
            self._wake.wait(self._period)
            self._wake.clear()
            with self._lock:
                held = list(self._held.values())
            by_store: dict[redis.Redis | None, list[_Lease]] = {}
            for lease in held:
                by_store.setdefault(lease.client, []).append(lease)
            for client, leases in by_store.items():
                self._renew(client or state_redis(), leases)

    def _renew(self, client: redis.Redis, leases: list[_Lease]) -> None:
        try:
            renew = store.script(client, _RENEW)
            pipe = client.pipeline(transaction=False)
            for lease in leases:
                renew(keys=[lease.key], args=[lease.token, lease.ms], client=pipe)
            results = pipe.execute()
        except redis.RedisError as exc:  # a Redis restart: try again next beat
            log.warning("idempotency heartbeat failed: %s", exc)
            return
        for lease, ok in zip(leases, results, strict=True):
            if not ok and lease.key not in self.lost:
                # Expired during an outage and maybe taken by another copy: the call
                # cannot be stopped; finish() keeps whichever outcome comes first.
                log.warning("idempotency lease %s lost (token %s)", lease.key, lease.token)
                self.lost.add(lease.key)


_heartbeat = _Heartbeat()


@contextmanager
def held(c: Claim) -> Iterator[None]:
    """Keep ``c``'s lease alive while the block runs."""
    lease = _Lease(lease_key(c.key), c.token, c.client, c.lease_ms or _lease_ms(get_settings()))
    _heartbeat.add(lease)
    try:
        yield
    finally:
        _heartbeat.remove(lease.key)


def held_leases(*, client: redis.Redis | None = None) -> dict[str, str]:
    """Every live lease in the store: key -> owner token (operators, tests)."""
    client = client or state_redis()
    pattern = rkey("idem", "*", "lease")
    out: dict[str, str] = {}
    prefix, suffix = rkey("idem", ""), ":lease"
    for raw in client.scan_iter(match=pattern, count=1000):
        name = raw.decode()
        token = client.get(name)
        if token is not None:
            out[name[len(prefix) : -len(suffix)]] = token.decode()
    return out

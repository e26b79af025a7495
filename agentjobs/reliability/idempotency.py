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
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from agentjobs import store
from agentjobs.keys import dead_letter_id, dead_letter_index, dead_letter_key, ledger_keys
from agentjobs.keys import key as rkey
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)
T = TypeVar("T")

_CLAIM = """
-- KEYS[1] outcome, KEYS[2] lease, KEYS[3] attempts,
-- KEYS[4..6] submit ledger: entries hash, kwargs hash, times zset
-- ARGV[1] owner token, ARGV[2] lease ms, ARGV[3] task id ('' for none)
-- -> {'done', outcome} | {'claimed', failed attempts so far} | {'busy', lease pttl ms}
-- A done key ends this task: its submit-ledger entry goes (ledger.py).
local out = redis.call('GET', KEYS[1])
if out then
  if ARGV[3] ~= '' then
    redis.call('HDEL', KEYS[4], ARGV[3])
    redis.call('HDEL', KEYS[5], ARGV[3])
    redis.call('ZREM', KEYS[6], ARGV[3])
  end
  return {'done', out}
end
local holder = redis.call('GET', KEYS[2])
if (not holder) or holder == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
  return {'claimed', tostring(redis.call('LLEN', KEYS[3]))}
end
return {'busy', tostring(redis.call('PTTL', KEYS[2]))}
"""

_FINISH = """
-- KEYS[1] outcome, KEYS[2] lease, KEYS[3] attempts, KEYS[4] dead letter, KEYS[5] dlq index,
-- KEYS[6..8] submit ledger: entries hash, kwargs hash, times zset
-- ARGV[1] owner token, ARGV[2] outcome JSON, ARGV[3] outcome TTL s,
-- ARGV[4] dead-letter id to remove ('' keeps it), ARGV[5] '1' if a success,
-- ARGV[6] task id whose submit-ledger entry ends here ('' for none)
-- The first outcome wins (a copy whose lease lapsed mid-call may finish second), except
-- that a success replaces a dead letter; the stored outcome is returned, so every copy
-- answers the same.
local out = redis.call('GET', KEYS[1])
if out and ARGV[5] == '1' and string.sub(out, 1, 15) == '{"dead_letter":' then
  out = nil
end
if not out then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  out = ARGV[2]
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[3])
if ARGV[4] ~= '' then
  redis.call('DEL', KEYS[4])
  redis.call('ZREM', KEYS[5], ARGV[4])
end
if ARGV[6] ~= '' then
  redis.call('HDEL', KEYS[6], ARGV[6])
  redis.call('HDEL', KEYS[7], ARGV[6])
  redis.call('ZREM', KEYS[8], ARGV[6])
end
return out
"""

_RENEW = """
-- KEYS[1] lease; ARGV[1] owner token, ARGV[2] lease ms -> 1 renewed, 0 lost
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
-- KEYS[1] lease; ARGV[1] owner token -> 1 released, 0 not ours
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _script(src: str) -> Any:
    return store.script(state_redis(), src)


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

    @property
    def done(self) -> bool:
        return self.state == "done"

    @property
    def claimed(self) -> bool:
        return self.state == "claimed"


def _lease_ms() -> int:
    return max(1, int(get_settings().idempotency_lease_s * 1000))


def try_claim(k: str, token: str, task_id: str = "") -> Claim:
    """One claim attempt (one Lua call); a done key also ends ``task_id``'s ledger entry."""

    keys = [outcome_key(k), lease_key(k), attempts_key(k), *ledger_keys()]
    args = [token, _lease_ms(), task_id]
    state, value = store.retrying(lambda: _script(_CLAIM)(keys=keys, args=args))
    state = state.decode() if isinstance(state, bytes) else str(state)
    if state == "done":
        return Claim(k, token, state, json.loads(value), task_id=task_id)
    if state == "claimed":
        return Claim(k, token, state, prior_attempts=int(value), task_id=task_id)
    return Claim(k, token, state, lease_left_ms=max(0, int(value)), task_id=task_id)


def claim(
    k: str,
    token: str,
    wait_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    task_id: str = "",
) -> Claim:
    """Claim ``k``, polling up to ``wait_s`` while another live copy holds it."""
    wait = get_settings().idempotency_wait_s if wait_s is None else wait_s
    t0 = time.monotonic()
    interval = 0.02
    while True:
        c = try_claim(k, token, task_id)
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
    stored = store.retrying(lambda: _script(_FINISH)(keys=keys, args=args))
    return json.loads(stored)


def succeeded(c: Claim, result: dict[str, Any]) -> dict[str, Any]:
    """Store a successful result; returns the key's result (another copy's if it won)."""
    stored = finish(c, {"result": result}, get_settings().result_ttl_s)
    return stored["result"]


def release(k: str, token: str) -> None:
    """Give the lease up without an outcome (the task will retry); best effort."""
    try:
        store.retrying(lambda: _script(_RELEASE)(keys=[lease_key(k)], args=[token]))
    except redis.RedisError:  # the lease lapses by itself
        log.warning("could not release idempotency lease of %s", k, exc_info=True)


def forget(k: str) -> None:
    """Drop ``k``'s outcome and attempt history (replay of a dead letter, operator purge)."""
    state_redis().delete(outcome_key(k), attempts_key(k))


def outcome(k: str) -> dict[str, Any] | None:
    raw = state_redis().get(outcome_key(k))
    return None if raw is None else json.loads(raw)


# -- failed attempts of a key (the retry policy's memory) -----------------------------


def add_attempt(k: str, attempt: dict[str, Any]) -> None:
    ak = attempts_key(k)

    def push() -> None:
        pipe = state_redis().pipeline()
        pipe.rpush(ak, json.dumps(attempt, separators=(",", ":")))
        pipe.expire(ak, get_settings().result_ttl_s)
        pipe.execute()

    store.retrying(push)


def attempts(k: str) -> list[dict[str, Any]]:
    raw = store.retrying(lambda: state_redis().lrange(attempts_key(k), 0, -1))
    return [json.loads(r) for r in raw]


# -- the heartbeat -----------------------------------------------------------------


class _Heartbeat:
    """One daemon thread per process renewing every lease this process holds."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}  # lease key -> token
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0
        #: The period the thread sleeps now (inf until it has computed one).
        self._period = float("inf")
        self.lost: set[str] = set()

    def add(self, lease: str, token: str) -> None:
        with self._lock:
            self._held[lease] = token
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="agentjobs-lease-heartbeat", daemon=True
                )
                self._thread.start()
        # The claim has just set the lease whole, so it needs no renewal now, unless the
        # thread sleeps a period computed from older settings, longer than this lease
        # allows: then renew at once and restart the period. (Waking on every add cost
        # a pipeline renewing every held lease per task.)
        if get_settings().idempotency_lease_s / 3.0 < self._period:
            self._wake.set()

    def remove(self, lease: str) -> None:
        with self._lock:
            self._held.pop(lease, None)

    def _run(self) -> None:
        while True:
            self._period = get_settings().idempotency_lease_s / 3.0
            self._wake.wait(self._period)
            self._wake.clear()
            with self._lock:
                held = list(self._held.items())
            if not held:
                continue
            try:
                renew = _script(_RENEW)
                ms = _lease_ms()
                pipe = state_redis().pipeline(transaction=False)
                for lease, token in held:
                    renew(keys=[lease], args=[token, ms], client=pipe)
                results = pipe.execute()
            except redis.RedisError as exc:  # a Redis restart: try again next beat
                log.warning("idempotency heartbeat failed: %s", exc)
                continue
            for (lease, token), ok in zip(held, results, strict=True):
                if not ok and lease not in self.lost:
                    # Expired during an outage and maybe taken by another copy: the call
                    # cannot be stopped; finish() keeps whichever outcome comes first.
                    log.warning("idempotency lease %s lost (token %s)", lease, token)
                    self.lost.add(lease)


_heartbeat = _Heartbeat()


@contextmanager
def held(c: Claim) -> Iterator[None]:
    """Keep ``c``'s lease alive while the block runs."""
    lease = lease_key(c.key)
    _heartbeat.add(lease, c.token)
    try:
        yield
    finally:
        _heartbeat.remove(lease)


def held_leases() -> dict[str, str]:
    """Every live lease in the store: key -> owner token (operators, tests)."""
    client = state_redis()
    pattern = rkey("idem", "*", "lease")
    out: dict[str, str] = {}
    prefix, suffix = rkey("idem", ""), ":lease"
    for raw in client.scan_iter(match=pattern, count=1000):
        name = raw.decode()
        token = client.get(name)
        if token is not None:
            out[name[len(prefix) : -len(suffix)]] = token.decode()
    return out

"""Response cache in Redis: identical requests of one tenant are answered once.

A request is cached when it says ``cache=True``, or says nothing and
``AGENTJOBS_CACHE_DEFAULT`` allows it (``deterministic``, the default, caches only
``temperature=0`` requests, whose answer is meant to be repeatable; ``on`` caches all;
``off`` none). The key is the SHA-256 of the canonical JSON of the API parameters as
sent (model resolved, defaults filled, string content as a text block), under the
tenant's namespace: an entry is never served to another tenant.

Single flight: the first worker to miss takes a lease on the key and calls Claude;
identical requests arriving meanwhile wait (polling, bounded by
``AGENTJOBS_CACHE_WAIT_S``) for its result instead of calling too. If the owner fails
it drops the lease and one waiter takes over. A hit returns the stored result with
``cached=True`` and ``cost_usd=0``; ``usage`` stays the usage of the call that produced it.

Functions take the state store as ``client`` and the settings as ``settings``
(keywords; the process's when not given), so a test can hand in its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import redis

from agentjobs import keys, store
from agentjobs.call import Call
from agentjobs.messages.request import CompleteRequest
from agentjobs.messages.result import ClaudeResult
from agentjobs.settings import Settings, get_settings
from agentjobs.spend import cost
from agentjobs.store import state_redis

_LOOKUP = store.lua("agentjobs.spend", "cache_lookup.lua")

log = logging.getLogger(__name__)

_POLL_FIRST_S = 0.005
_POLL_MAX_S = 0.1


def enabled(req: CompleteRequest, *, settings: Settings | None = None) -> bool:
    """Whether this request uses the response cache."""
    if req.cache is not None:
        return req.cache
    mode = (settings or get_settings()).cache_default
    return mode == "on" or (mode == "deterministic" and req.temperature == 0)


def canonical(req: CompleteRequest, params: dict[str, Any] | None = None) -> str:
    """The canonical JSON of the request as sent (``params``, built from ``req`` when not
    given): equal requests give equal strings."""
    params = dict(params if params is not None else req.api_params())
    params["messages"] = [{**m, "content": _blocks(m["content"])} for m in params["messages"]]
    if "system" in params:
        params["system"] = _blocks(params["system"])
    if "temperature" in params:
        params["temperature"] = float(params["temperature"])
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _blocks(content: Any) -> Any:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def entry_key(req: CompleteRequest, params: dict[str, Any] | None = None) -> str:
    digest = hashlib.sha256(canonical(req, params).encode()).hexdigest()
    return keys.key("rc", req.tenant or cost.NO_TENANT, digest)


def _stats_key() -> str:
    return keys.key("rc", "stats")


@dataclass
class Flight:
    """The outcome of ``lookup``: a hit, or the right (and duty) to compute and ``store``."""

    key: str | None
    hit: dict[str, Any] | None = None
    token: str | None = None
    #: True when this caller waited for another's identical call.
    coalesced: bool = False
    #: The state store and settings of the lookup, which ``store`` and ``close`` use.
    _client: redis.Redis | None = field(default=None, repr=False)
    _settings: Settings | None = field(default=None, repr=False)

    def store(
        self, result: dict[str, Any], sent: CompleteRequest, params: dict[str, Any] | None = None
    ) -> None:
        """Cache a fresh result under the request actually sent, then drop the lease.

        A budget downgrade changes the request: its answer is stored under the
        downgraded request's key, never under the one that was asked for.
        """
        if self.key is None:
            return
        r = self._client or state_redis()
        ttl_ms = int((self._settings or get_settings()).cache_ttl_s * 1000)
        try:
            pipe = r.pipeline(transaction=False)
            pipe.set(entry_key(sent, params), json.dumps(result, separators=(",", ":")), px=ttl_ms)
            pipe.hincrby(_stats_key(), "stores", 1)
            pipe.execute()
        except redis.RedisError as exc:  # the answer is paid for: return it, uncached
            log.warning("response not cached: %s", exc)
        self.close()

    def close(self) -> None:
        """Drop the lease if this caller holds it (idempotent; call it on every path)."""
        if self.key is not None and self.token is not None:
            try:
                store.unlock(self._client or state_redis(), self.key + ":lock", self.token)
            except redis.RedisError as exc:  # the lease lapses on its own
                log.warning("single-flight lease not released: %s", exc)
            self.token = None


#: The Flight of a request that does not use the cache.
def _off() -> Flight:
    return Flight(key=None)


def lookup(
    req: CompleteRequest,
    *,
    params: dict[str, Any] | None = None,
    sleep: Any = time.sleep,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> Flight:
    """A hit, or a miss whose caller must ``store`` (or ``close``) when done.

    Waits while an identical request is in flight elsewhere, up to
    ``AGENTJOBS_CACHE_WAIT_S``; after that the caller computes without the lease.
    """
    s = settings or get_settings()
    if not enabled(req, settings=s):
        return _off()
    r = client or state_redis()
    lookup = store.script(r, _LOOKUP)
    key = entry_key(req, params)
    token = uuid.uuid4().hex
    lease_ms = int(
        (s.call_timeout_s(req.effective_max_tokens()) + s.limiter_max_sleep_s + 30) * 1000
    )
    deadline = time.monotonic() + s.cache_wait_s
    pause = _POLL_FIRST_S
    waited = False
    while True:
        reply = lookup(keys=[key, key + ":lock"], args=[token, lease_ms])
        state = int(reply[0])
        if state == 1:
            stored = json.loads(reply[1])
            if stored.get("tenant") != req.tenant:  # the key has the tenant; belt and braces
                return _count(r, "misses", Flight(key=None))
            flight = Flight(key=key, hit=stored, coalesced=waited, _client=r, _settings=s)
            return _count(r, "hits", flight, coalesced=waited)
        if state == 2:
            return _count(r, "misses", Flight(key=key, token=token, _client=r, _settings=s))
        if time.monotonic() >= deadline:
            return _count(r, "misses", Flight(key=key, _client=r, _settings=s))
        waited = True
        sleep(pause)
        pause = min(pause * 1.5, _POLL_MAX_S)


def _count(r: redis.Redis, what: str, flight: Flight, coalesced: bool = False) -> Flight:
    pipe = r.pipeline(transaction=False)
    pipe.hincrby(_stats_key(), what, 1)
    if coalesced:
        pipe.hincrby(_stats_key(), "coalesced", 1)
    pipe.execute()
    return flight


def respond_from_cache(call: Call, next: Any) -> ClaudeResult:
    """The pipeline's cache step: a stored answer, or the rest of the path (single
    flight: identical calls wait for this one), whose answer is stored under the request
    actually sent (a budget downgrade below changes it)."""
    flight = lookup(call.request, params=call.params)
    if flight.hit is not None:
        return hit_result(flight, call, (time.perf_counter() - call.started) * 1000.0)
    try:
        result: ClaudeResult = next(call)
        flight.store(result.model_dump(mode="json"), call.request, call.params)
        return result
    finally:
        flight.close()  # a failed owner lets one waiting identical call take over


def hit_result(flight: Flight, call: Call, latency_ms: float) -> ClaudeResult:
    """The result of a cache hit (``cached=True``, ``cost_usd=0``), added to the cost totals."""
    assert flight.hit is not None
    req = call.request
    stored = ClaudeResult.model_validate(flight.hit)
    result = stored.model_copy(
        update={
            "cost_usd": 0.0,
            "cached": True,
            "latency_ms": round(latency_ms, 3),
            "attempts": call.attempts,
            "queue": call.queue,
            "worker": call.worker,
            "idempotency_key": call.key,
            "task_id": call.task_id,
            "tenant": req.tenant,
            "limiter_wait_ms": 0.0,
            "route_reason": req.route_reason,
        }
    )
    cost.record_result(result, saved_usd=stored.cost_usd, client=flight._client)
    return result


def stats(*, client: redis.Redis | None = None) -> dict[str, float]:
    """Counters since the state store was created: hits, misses, stores, coalesced
    (hits that waited for an identical call in flight) and hit_rate (hits / lookups)."""
    r = client or state_redis()
    raw = r.hgetall(_stats_key())
    out: dict[str, float] = {k: 0 for k in ("hits", "misses", "stores", "coalesced")}
    out.update({k.decode(): int(v) for k, v in raw.items()})
    lookups = out["hits"] + out["misses"]
    out["hit_rate"] = out["hits"] / lookups if lookups else 0.0
    return out

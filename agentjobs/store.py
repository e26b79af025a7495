"""The state store connection, its Lua scripts, and values held once per process.

``AGENTJOBS_REDIS_URL`` holds the limiter, idempotency records, dead letters, the
response cache and the counters. ``state_redis()`` is its client for this process:
thread-safe (a connection pool), rebuilt after a fork, and following the settings when
tests change them. Functions that talk to the store take it as a ``client`` keyword,
``None`` meaning this one.

Lua scripts live in a ``scripts/`` folder beside their module, read with ``lua`` and
registered with ``script``; the one every package needs (delete a lock or lease only
while it still holds the caller's token) is ``unlock``.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, Generic, ParamSpec, TypeVar

import redis
import tenacity

from agentjobs.settings import get_settings

T = TypeVar("T")
P = ParamSpec("P")


class per_process(Generic[P, T]):  # a decorator, so named like functools.cache
    """``factory``'s value, built once per process and arguments.

    Decorate a module-level factory: calling it returns the value the first call built
    until it is called with other arguments (compared with ``==``: a new settings object
    with the same values keeps the value), then builds again and keeps only the new
    one. A forked child never uses its parent's value (a pooled connection is not
    fork-safe): ``os.fork`` drops it in the child, and replaces the lock, so a fork
    while another thread was building cannot deadlock the child. ``reset()`` drops the
    value (tests that change what the factory reads).
    """

    def __init__(self, factory: Callable[P, T]) -> None:
        self._factory = factory
        #: (args, kwargs, value) as one tuple, so a reader never sees half an update.
        self._held: tuple[tuple[Any, ...], dict[str, Any], T] | None = None
        self._lock = threading.Lock()
        functools.update_wrapper(self, factory)
        os.register_at_fork(after_in_child=self._forked)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> T:
        held = self._held
        if held is None or held[0] != args or held[1] != kwargs:
            with self._lock:
                held = self._held
                if held is None or held[0] != args or held[1] != kwargs:
                    held = self._held = (args, kwargs, self._factory(*args, **kwargs))
        return held[2]

    def reset(self) -> None:
        with self._lock:
            self._held = None

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._held = None


@per_process
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30)


def state_redis() -> redis.Redis:
    """The Redis client of the state store for this process (``decode_responses=False``)."""
    return _client(get_settings().redis_url)


def lua(package: str, name: str) -> str:
    """The text of the Lua script ``name`` shipped in ``package``'s ``scripts/`` folder
    (e.g. ``lua("agentjobs.limiter", "acquire.lua")``); each states its KEYS and ARGV."""
    return resources.files(package).joinpath("scripts", name).read_text(encoding="utf-8")


_scripts: dict[tuple[int, str], Any] = {}


def script(client: redis.Redis, src: str) -> Any:
    """``src`` registered on ``client``: it runs as EVALSHA (the text is sent once, not on
    every call) and reloads itself after NOSCRIPT (a restarted Redis)."""
    found = _scripts.get((id(client), src))
    if found is None:
        found = _scripts[(id(client), src)] = client.register_script(src)
    return found


_UNLOCK = lua("agentjobs", "unlock.lua")


def unlock(client: redis.Redis, key: str, token: str) -> bool:
    """Give up a lock or lease: delete ``key`` only while it still holds ``token`` (it may
    have lapsed and been taken by another caller since); True if it was deleted."""
    return bool(script(client, _UNLOCK)(keys=[key], args=[token]))


def retrying(fn: Callable[[], T]) -> T:
    """Run a state-store operation, retrying connection errors for AGENTJOBS_STATE_RETRY_S.

    A Redis restart takes seconds; a paid answer must not be dropped for it.
    """
    policy = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type((redis.ConnectionError, redis.TimeoutError)),
        stop=tenacity.stop_after_delay(get_settings().state_retry_s),
        wait=tenacity.wait_exponential(multiplier=0.05, max=1.0),
        reraise=True,
    )
    return policy(fn)

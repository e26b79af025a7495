"""The state store connection: one Redis client per process and URL.

``AGENTJOBS_REDIS_URL`` holds the limiter, idempotency records, dead letters, the
response cache and the counters. The client is thread-safe (a connection pool), is
rebuilt after a fork, and follows the settings when tests change them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from importlib import resources
from typing import Any, TypeVar

import redis
import tenacity

from agentjobs.settings import get_settings

T = TypeVar("T")

_lock = threading.Lock()
_clients: dict[tuple[str, int], redis.Redis] = {}
_scripts: dict[tuple[int, str], Any] = {}


def state_redis() -> redis.Redis:
    """The Redis client of the state store for this process (``decode_responses=False``)."""
    url = get_settings().redis_url
    key = (url, os.getpid())
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = redis.Redis.from_url(url, health_check_interval=30)
                _clients[key] = client
    return client


def lua(package: str, name: str) -> str:
    """The text of the Lua script ``name`` shipped in ``package``'s ``scripts/`` folder
    (e.g. ``lua("agentjobs.limiter", "acquire.lua")``); each states its KEYS and ARGV."""
    return resources.files(package).joinpath("scripts", name).read_text(encoding="utf-8")


def script(client: redis.Redis, src: str) -> Any:
    """``src`` registered on ``client``: it runs as EVALSHA (the text is sent once, not on
    every call) and reloads itself after NOSCRIPT (a restarted Redis)."""
    found = _scripts.get((id(client), src))
    if found is None:
        found = _scripts[(id(client), src)] = client.register_script(src)
    return found


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

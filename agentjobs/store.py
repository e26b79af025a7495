"""The state store connection: one Redis client per process and URL.

``AGENTJOBS_REDIS_URL`` holds the limiter, idempotency records, dead letters, the
response cache and the counters. The client is thread-safe (a connection pool), is
rebuilt after a fork, and follows the settings when tests change them.
"""

from __future__ import annotations

import os
import threading
from importlib import resources
from typing import Any

import redis

from agentjobs.settings import get_settings

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

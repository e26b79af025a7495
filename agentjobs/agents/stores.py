"""``session_store()``: the session store of this process, as the settings name it.

``AGENTJOBS_SESSION_STORE`` empty: the state store (Redis, ``redis_store.py``). A
``postgresql://`` URL: PostgreSQL (``postgres_store.py``, the ``[postgres]`` extra),
each checkpoint in a history table; ``agentjobs sessions migrate`` creates its schema.
Both keep an ended session ``AGENTJOBS_SESSION_RETENTION_S`` after its last write
(``store.py``).
"""

from __future__ import annotations

from agentjobs.agents.store import SessionStore
from agentjobs.settings import get_settings
from agentjobs.store import per_process


@per_process
def _store(url: str | None) -> SessionStore:
    if not url:
        from agentjobs.agents.redis_store import RedisSessionStore

        return RedisSessionStore()
    from agentjobs.agents.postgres_store import PostgresSessionStore

    return PostgresSessionStore(url)


def session_store() -> SessionStore:
    """The store for this process: built once (again after a fork, or when the setting
    changes); thread-safe."""
    return _store(get_settings().session_store)

"""Writing a session's record: one version-checked change, and the final transitions.

Every change the loop makes goes through ``write``: read the record, change it, write
it back if its version is still the one read (else read again and decide again), so
two copies of one step (a redelivered task beside the original) cannot both apply.
A change decides from the record alone, and returns None when there is nothing to
write (the work was already done). ``write`` reports a session that this change ended
(metrics) exactly once: only the write that made it final reports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from celery.exceptions import Reject
from kombu.exceptions import OperationalError

from agentjobs.agents import hooks, record
from agentjobs.agents.agent import AGENTS
from agentjobs.agents.store import Record
from agentjobs.agents.stores import session_store

log = logging.getLogger(__name__)

Change = Callable[[Record], Record | None]


def outage(exc: BaseException) -> bool:
    """Whether ``exc`` is a store or broker that cannot be reached (it will come back),
    not a problem of the session: the state store (Redis), the broker (kombu), a
    PostgreSQL session store (psycopg's OperationalError), a socket."""
    if isinstance(exc, redis.RedisError | OperationalError | OSError):
        return True
    return type(exc).__name__ == "OperationalError" and type(exc).__module__.startswith("psycopg")


def requeue(exc: BaseException) -> Reject:
    """Give the message back to the broker (redelivered, never lost), as the pipeline
    does when the state store is down (``recovery.store_down``)."""
    return Reject(f"store or broker unreachable, message requeued: {exc!r}", requeue=True)


def write(session_id: str, change: Change) -> tuple[Record, bool]:
    """Apply ``change`` with the version check; (the stored record, whether it wrote)."""
    wrote = [False, False]  # wrote, ended by this write

    def apply(rec: Record) -> Record | None:
        was_final = record.is_final(rec)
        out = change(rec)
        wrote[0] = out is not None
        wrote[1] = out is not None and not was_final and record.is_final(out)
        if out is not None:
            out["updated_at"] = time.time()
        return out

    rec = session_store().update(session_id, apply)
    if wrote[1]:
        hooks.ended(rec)
    return rec, wrote[0]


def fallback(rec: Record) -> Any:
    """``on_stop(record)`` of the agent running (or the one that started the session),
    when it is defined in this process; None otherwise."""
    names = [rec["agent"], rec["chain"][0]["agent"]] if rec.get("chain") else [rec["agent"]]
    for name in names:
        agent = AGENTS.get(name)
        if agent is not None and agent.on_stop is not None:
            try:
                return agent.on_stop(rec)
            except Exception as exc:  # the fallback must not lose the stop
                log.warning("on_stop of %s failed", name, exc_info=True)
                rec["error"] = f"on_stop failed: {type(exc).__name__}: {exc}"
                return None
    return None


def stop(rec: Record, reason: str) -> Record:
    """End the session ``stopped`` by the ceiling ``reason``; on_stop gives the output."""
    rec["stop_reason"] = reason
    record.end(rec, "stopped")
    rec["output"] = fallback(rec)
    return rec


def fail(rec: Record, error: str) -> Record:
    """End the session ``failed`` with a one-line ``error``."""
    rec["error"] = error
    record.end(rec, "failed")
    return rec


def complete(rec: Record, output: Any) -> Record:
    rec["output"] = output
    record.end(rec, "completed")
    return rec

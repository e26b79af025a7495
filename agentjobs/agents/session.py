"""The handle ``Agent.start`` returns: a session id, and a wait on its record.

``wait`` polls the session store with a deadline (backing off from 50 ms to 0.5 s),
because a session is many tasks and has no one result to block on. It refuses to run
inside a worker's task: a worker thread that waits for other tasks can deadlock the
pool that would run them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from agentjobs.agents import record
from agentjobs.agents.record import SessionResult
from agentjobs.agents.store import FINAL, Record
from agentjobs.agents.stores import session_store
from agentjobs.errors import SessionStateError, SessionTimeoutError


def _in_task() -> bool:
    from celery import current_task

    return bool(current_task) and not getattr(current_task.request, "called_directly", True)


class Session:
    """One agent session, by id."""

    def __init__(self, session_id: str) -> None:
        self.id = session_id

    def __repr__(self) -> str:
        return f"<Session {self.id}>"

    def record(self) -> Record:
        """The whole record now (SessionNotFound when there is none)."""
        return session_store().load(self.id)

    def status(self) -> str:
        return str(self.record()["status"])

    def result(self) -> SessionResult:
        """The SessionResult now, whatever the status."""
        return record.result(self.record())

    def wait(self, timeout: float = 300.0, until: Iterable[str] | None = None) -> SessionResult:
        """The SessionResult once the session has ended (or reached one of ``until``,
        e.g. ``("waiting_approval",)``); SessionTimeoutError after ``timeout`` s."""
        if _in_task():
            raise SessionStateError(
                "Session.wait inside a task would hold a worker thread: enqueue the next "
                "work instead, or wait in the caller"
            )
        wanted = FINAL | frozenset(until or ())
        store = session_store()
        deadline = time.monotonic() + timeout
        interval = 0.05
        while True:
            rec = store.load(self.id)
            if rec["status"] in wanted:
                return record.result(rec)
            left = deadline - time.monotonic()
            if left <= 0:
                raise SessionTimeoutError(
                    f"session {self.id} still {rec['status']} after {timeout:g}s"
                    f" ({len(rec['steps'])} steps, {len(rec['tool_calls'])} tool calls)"
                )
            time.sleep(min(interval, left))
            interval = min(interval * 1.5, 0.5)

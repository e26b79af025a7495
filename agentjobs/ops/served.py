"""Which queues a worker consumes, and so what it serves: Claude calls (``claude.*``),
agentjobs' work at all (those, or agent sessions' tool calls on ``agentjobs.tools``), or
a project's own tasks only (a worker of a project's app, ``agentjobs.install``).

The worker's preflight (``worker/preflight.py``) checks the API only on workers that
call Claude; the signal handlers start agentjobs' background threads (submit ledger
sweeper, batch lane, session sweep) only on workers that serve agentjobs.
"""

from __future__ import annotations

from typing import Any

#: The prefix of the queues of Claude calls, one per model family (catalog.queue_for).
CLAUDE_PREFIX = "claude."
#: The tools queue of agent sessions (ARCHITECTURE.md, "Agent sessions").
TOOLS_QUEUE = "agentjobs.tools"


def consumed_queues(worker: Any) -> list[str] | None:
    """The names of the queues ``worker`` (a WorkController, or anything with its
    ``app``) consumes; empty when it names none (every queue its app knows), None when
    it has no app. Known by the time bootsteps are built (``-Q`` has been applied)."""
    app = getattr(worker, "app", None)
    if app is None:
        return None
    queues = app.amqp.queues
    return [str(name) for name in (queues.consume_from or queues)]


def calls_claude(worker: Any) -> bool:
    """Whether the worker consumes a queue of Claude calls (``claude.*``), or every
    queue (none named). Model steps of agent sessions run on ``claude.*`` too; tool
    calls never call the API."""
    names = consumed_queues(worker)
    return not names or any(n.startswith(CLAUDE_PREFIX) for n in names)


def serves_agentjobs(worker: Any) -> bool:
    """Whether the worker consumes one of agentjobs' queues (``claude.*`` or
    ``agentjobs.tools``), or every queue (none named)."""
    names = consumed_queues(worker)
    return calls_claude(worker) or any(n == TOOLS_QUEUE for n in names or [])

"""agentjobs: Claude calls as Celery tasks at production scale.

    from agentjobs import complete
    result = complete.delay(prompt="Summarise ...", model="haiku").get(timeout=60)

A project with a Celery app of its own runs ``agentjobs.install(app)`` once (in
``proj/celery.py``): ``complete.delay`` then publishes through that app.

The public names load on first use, so importing a part of agentjobs (the simulator,
the errors, the CLI's ``--help``) does not load the Celery app.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from agentjobs.errors import (
    AgentJobsError,
    BudgetExceededError,
    ConfigurationError,
    DeadLetteredError,
    RequestError,
)

if TYPE_CHECKING:
    from agentjobs.agents.agent import Agent
    from agentjobs.agents.record import SessionResult
    from agentjobs.agents.session import Session
    from agentjobs.agents.tool import tool
    from agentjobs.messages.request import CompleteRequest
    from agentjobs.messages.result import ClaudeResult
    from agentjobs.worker.app import app
    from agentjobs.worker.install import install
    from agentjobs.worker.tasks import complete

_LAZY = {
    "app": "agentjobs.worker.app",
    "complete": "agentjobs.worker.tasks",
    "install": "agentjobs.worker.install",
    "ClaudeResult": "agentjobs.messages.result",
    "CompleteRequest": "agentjobs.messages.request",
    "tool": "agentjobs.agents.tool",
    "Agent": "agentjobs.agents.agent",
    "Session": "agentjobs.agents.session",
    "SessionResult": "agentjobs.agents.record",
}

__all__ = [
    "Agent",
    "AgentJobsError",
    "BudgetExceededError",
    "ClaudeResult",
    "CompleteRequest",
    "ConfigurationError",
    "DeadLetteredError",
    "RequestError",
    "Session",
    "SessionResult",
    "app",
    "complete",
    "install",
    "tool",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentjobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

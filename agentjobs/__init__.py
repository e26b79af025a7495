"""agentjobs: Claude calls as Celery tasks at production scale.

from agentjobs import complete
result = complete.delay(prompt="Summarise ...", model="haiku").get(timeout=60)
"""

from agentjobs.errors import (
    AgentJobsError,
    BudgetExceededError,
    ConfigurationError,
    DeadLetteredError,
    RequestError,
)
from agentjobs.messages.request import ClaudeResult, CompleteRequest
from agentjobs.worker.app import app
from agentjobs.worker.tasks import complete

__all__ = [
    "AgentJobsError",
    "BudgetExceededError",
    "ClaudeResult",
    "CompleteRequest",
    "ConfigurationError",
    "DeadLetteredError",
    "RequestError",
    "app",
    "complete",
]

"""agentjobs: Claude calls as Celery tasks at production scale.

from agentjobs import complete
result = complete.delay(prompt="Summarise ...", model="haiku").get(timeout=60)
"""

from agentjobs.app import app
from agentjobs.errors import (
    AgentJobsError,
    BudgetExceededError,
    ConfigurationError,
    DeadLetteredError,
    RequestError,
)
from agentjobs.schemas import ClaudeResult, CompleteRequest
from agentjobs.tasks import complete

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

"""Every exception agentjobs raises, under one root.

AgentJobsError
 ├── ConfigurationError          a setting or the environment is wrong: fix and restart
 ├── RequestError (ValueError)   the caller's request is invalid: raised at .delay()
 │    └── UnknownModelError
 ├── TransientError              worth retrying (the retry policy decides how)
 │    └── RateLimitedError       the server or our limiter says wait
 │         └── BudgetDeferredError  over budget with AGENTJOBS_BUDGET_ACTION=defer
 ├── PermanentError              retrying cannot help: dead-lettered at once
 │    └── SpendLimitError        the account's spend cap: an operator must act
 ├── BudgetExceededError         an agentjobs budget (tenant or global) is used up
 ├── DeadLetteredError           the task gave up; names the dead-letter record
 ├── UnknownAgentError           no agent of that name is registered in this process
 ├── ToolDefinitionError (TypeError)   a function cannot be a tool
 ├── UnknownToolError (LookupError)    no tool of that name is registered in this process
 ├── SessionStateError           the session's status does not allow that (approve, cancel)
 ├── SessionTimeoutError (TimeoutError)  Session.wait ran out of time
 └── EvalError                   an eval's cases or baseline file is wrong (names file:line)
"""

from __future__ import annotations


class AgentJobsError(Exception):
    """Root of every agentjobs error."""


class ConfigurationError(AgentJobsError):
    """A setting or the environment is wrong; nothing will work until it is fixed."""


class RequestError(AgentJobsError, ValueError):
    """The request is invalid; raised in the caller before anything is enqueued."""


class UnknownModelError(RequestError):
    """The model is neither an alias nor a known model id."""


class TransientError(AgentJobsError):
    """A failure that a retry may cure."""


class RateLimitedError(TransientError):
    """Told to wait: a 429 or a limiter wait longer than a worker should sleep."""

    def __init__(self, message: str, retry_after_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BudgetDeferredError(RateLimitedError):
    """Over budget with the ``defer`` action: retry after ``retry_after_s`` (not a failure)."""


class PermanentError(AgentJobsError):
    """A failure no retry can cure (bad request, auth, not found)."""


class SpendLimitError(PermanentError):
    """The API key's spend cap is reached; retrying does not help until an operator acts."""


class BudgetExceededError(AgentJobsError):
    """An agentjobs budget is used up (raised at submit or before a call)."""


class DeadLetteredError(AgentJobsError):
    """The task gave up and was dead-lettered; ``dead_letter_id`` names the record."""

    def __init__(self, message: str, dead_letter_id: str = "") -> None:
        super().__init__(message)
        self.dead_letter_id = dead_letter_id


class UnknownAgentError(AgentJobsError):
    """No agent of that name is registered in this process (load its module with -I)."""


class ToolDefinitionError(AgentJobsError, TypeError):
    """A function cannot be a tool (untyped parameter, ``*args``, bad or taken name)."""


class UnknownToolError(AgentJobsError, LookupError):
    """No tool of this name is registered in this process."""


class SessionStateError(AgentJobsError):
    """The session's status does not allow the operation: approve or deny when nothing
    waits for approval, cancel a session that already ended."""


class SessionTimeoutError(AgentJobsError, TimeoutError):
    """``Session.wait`` ran out of time before the session reached the status waited for."""


class EvalError(AgentJobsError):
    """An eval's cases or baseline file cannot be used; the message names the file (and
    the line of a bad case)."""

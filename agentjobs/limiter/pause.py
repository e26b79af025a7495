"""The pipeline's pause step: no call while the rate-limit group is paused.

Checked on the group actually called, after ``model="auto"`` routing and a budget
downgrade chose the model.
"""

from __future__ import annotations

from typing import Any

from agentjobs.call import Call
from agentjobs.reliability.recovery import check_pause as _raise_if_paused


def check_pause(call: Call, next: Any) -> Any:
    """SpendLimitError while the call's group is paused; else the rest of the path."""
    _raise_if_paused(call.group)
    return next(call)

"""A session's hard ceilings, checked before the work that would pass them.

- ``max_steps``: step ``n`` is not made when ``n > max_steps``;
- ``max_cost_usd``: a step is not made when the session's cost so far, plus what is
  reserved, plus the step's estimated cost (``spend.budget.estimate_usd``: the input
  at the dearest rate it may be billed plus the whole ``max_tokens`` of output, an
  upper bound) would pass it; the estimate is then reserved in the record until the
  step's real cost replaces it, so nothing else of the session can spend it twice;
- ``max_tool_calls``: a turn asking for more tool calls than remain runs none of them
  (a partial turn would leave tool_use blocks the API wants answered);
- ``timeout_s``: wall clock since the session started, checked before each step and
  each tool call (and at an approval);
- ``max_tool_errors``: tool errors (a failure, a timeout, an invalid input) the session
  tolerates; the turn that passes it ends the session before the next step.

Reaching one ends the session ``stopped`` with ``stop_reason`` the ceiling's name.
"""

from __future__ import annotations

import time

from agentjobs.agents.store import Record

#: The ceilings, by name (the record's ``limits`` and ``stop_reason``).
NAMES = ("max_steps", "max_tool_calls", "max_cost_usd", "timeout_s", "max_tool_errors")


def timed_out(rec: Record, now: float | None = None) -> bool:
    limit = rec["limits"].get("timeout_s")
    t = time.time() if now is None else now
    return limit is not None and t - float(rec["created_at"]) > float(limit)


def before_step(rec: Record, n: int, estimate_usd: float, now: float | None = None) -> str | None:
    """The ceiling step ``n`` would pass (its ``stop_reason``), or None to make it."""
    limits = rec["limits"]
    if limits.get("max_steps") is not None and n > int(limits["max_steps"]):
        return "max_steps"
    if timed_out(rec, now):
        return "timeout"
    cap = limits.get("max_cost_usd")
    if cap is not None:
        committed = float(rec["cost_usd"]) + float(rec.get("reserved_usd") or 0.0)
        if committed + estimate_usd > float(cap):
            return "max_cost_usd"
    return None


def before_tools(rec: Record, asked: int) -> str | None:
    """``max_tool_calls`` when ``asked`` more calls would pass it, else None."""
    cap = rec["limits"].get("max_tool_calls")
    if cap is not None and len(rec["tool_calls"]) + asked > int(cap):
        return "max_tool_calls"
    return None


def after_tool_errors(rec: Record) -> str | None:
    cap = rec["limits"].get("max_tool_errors")
    if cap is not None and int(rec.get("tool_errors") or 0) > int(cap):
        return "max_tool_errors"
    return None

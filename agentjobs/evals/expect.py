"""The checks of a case's ``expect`` against one run: a list of what failed, empty if none.

A run is reduced to an ``Outcome`` first (the same for a request and an agent session),
so each check is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentjobs.evals.cases import Expect, validator_for


@dataclass
class Outcome:
    """What one run gave: the text, how it stopped, the tools it called, what it used."""

    text: str = ""
    stop_reason: str | None = None
    #: A session's status; "completed" for a request that answered.
    status: str = "completed"
    tools: list[str] = field(default_factory=list)
    steps: int = 1
    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    #: The run did not finish (task failed, timed out): the reason, and no other check.
    error: str | None = None


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def check(expect: Expect, out: Outcome) -> list[str]:
    """Every expectation ``out`` does not meet, one short sentence each."""
    if out.error is not None:
        return [f"run failed: {_short(out.error, 160)}"]
    failed: list[str] = []
    if expect.status is not None and out.status not in expect.status:
        failed.append(f"status {out.status}, expected {' or '.join(expect.status)}")
    if expect.stop_reason is not None and out.stop_reason not in expect.stop_reason:
        allowed = " or ".join(str(s) for s in expect.stop_reason)
        failed.append(f"stop_reason {out.stop_reason}, expected {allowed}")
    for needle in expect.contains or ():
        if needle not in out.text:
            failed.append(f"text does not contain {_short(needle)!r}")
    if expect.json_schema is not None:
        failed += _schema(expect.json_schema, out.text)
    for name in expect.tool_called or ():
        if name not in out.tools:
            failed.append(f"tool {name} not called")
    for name in expect.tool_not_called or ():
        if name in out.tools:
            failed.append(f"tool {name} called")
    if expect.max_steps is not None and out.steps > expect.max_steps:
        failed.append(f"{out.steps} steps, at most {expect.max_steps} expected")
    if expect.max_cost_usd is not None and out.cost_usd > expect.max_cost_usd:
        failed.append(f"cost {out.cost_usd:.6f} USD, at most {expect.max_cost_usd:g} expected")
    return failed


def _schema(schema: dict[str, Any], text: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return [f"text is not JSON ({exc.msg} at {exc.pos}): {_short(text)!r}"]
    errors = sorted(validator_for(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return []
    first = errors[0]
    where = "/".join(str(p) for p in first.path) or "(root)"
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return [f"text fails the schema at {where}: {_short(first.message, 100)}{more}"]


def from_result(result: dict[str, Any]) -> Outcome:
    """The outcome of a ``complete`` result (ClaudeResult)."""
    usage = result.get("usage") or {}
    return Outcome(
        text=str(result.get("text") or ""),
        stop_reason=result.get("stop_reason"),
        tools=[
            str(b.get("name"))
            for b in result.get("content") or ()
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ],
        steps=1,
        cost_usd=float(result.get("cost_usd") or 0.0),
        input_tokens=_tokens_in(usage),
        output_tokens=int(usage.get("output_tokens") or 0),
    )


def from_session(result: dict[str, Any], record: dict[str, Any]) -> Outcome:
    """The outcome of an agent session: its SessionResult and record (for tool names)."""
    usage = result.get("usage") or {}
    return Outcome(
        text=str(result.get("output") or ""),
        stop_reason=result.get("stop_reason"),
        status=str(result.get("status")),
        tools=[str(c.get("name")) for c in record.get("tool_calls") or ()],
        steps=int(result.get("steps") or 0),
        cost_usd=float(result.get("cost_usd") or 0.0),
        input_tokens=_tokens_in(usage),
        output_tokens=int(usage.get("output_tokens") or 0),
    )


def _tokens_in(usage: dict[str, Any]) -> int:
    """Input tokens as billed in any form: plain, written to and read from the cache."""
    return sum(
        int(usage.get(k) or 0)
        for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )

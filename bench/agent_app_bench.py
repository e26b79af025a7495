"""The agent bench/agents.py measures, imported by its workers (``-I agent_app_bench``).

One agent, two fast pure tools: the simulator's ``[[sim:tool_rounds=3]]`` makes every
session four model steps and three tool calls, so the loop's own work is what differs
from a plain chain of ``complete`` calls making the same requests.
"""

from __future__ import annotations

from agentjobs.agents.agent import Agent
from agentjobs.agents.tool import tool


@tool
def bench_lookup(word: str) -> dict[str, str]:
    """Look a word up."""
    return {"word": word, "meaning": "a word"}


@tool
def bench_add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


agent = Agent(
    "bench_agent",
    model="haiku",
    system="You answer with your tools.",
    tools=[bench_lookup, bench_add],
    max_steps=10,
    max_tool_calls=10,
    max_tool_errors=None,
    max_tokens=256,
    timeout_s=600,
)


def message(i: int) -> str:
    return f"[[sim:tool_rounds=3]] Question {i}: look a word up and add two numbers."

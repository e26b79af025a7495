"""Exactly once: a step or tool call whose task runs again (a redelivery, a copy beside
the original, a crash between storing an answer and checkpointing it) makes no second
model call and no second tool run. The tasks run here by hand, with no worker, as a
broker would deliver them again; then a lost message is sent again by resume."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from agentjobs.agents import control
from agentjobs.agents.agent import AGENTS, Agent
from agentjobs.agents.stores import session_store
from agentjobs.agents.tasks import agent_step, tool_call
from agentjobs.agents.tool import tool
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.errors import SessionStateError

QUEUES = (*all_queues(), "agentjobs.tools")
CALLS: Counter[str] = Counter()


@tool
def spell(word: str) -> str:
    """Spell a word."""
    CALLS["spell"] += 1
    return "-".join(word)


@pytest.fixture
def clean(state_redis: Any, fresh_sim: Any) -> Iterator[None]:
    CALLS.clear()
    purge(QUEUES)
    yield
    purge(QUEUES)


def sim_requests(sim: Any) -> int:
    return int(sim.stats()["requests"])


def _rewind(session_id: str, old: dict[str, Any]) -> None:
    """Put an older copy of the record back (a checkpoint lost in a crash)."""
    store = session_store()
    current = store.load(session_id)
    store.put({**old, "version": current["version"]})


def test_a_redelivered_step_and_tool_call_are_not_made_again(clean: None, fresh_sim: Any) -> None:
    # No worker: each task runs here, by hand, as a redelivery would run it again.
    agent = Agent("loop_redeliver", model="haiku", system="[[sim:tool_rounds=1]]", tools=[spell])
    session = agent.start("Look 'loop' up.")
    sid = session.id
    store = session_store()
    before_step = store.load(sid)
    step = {"session_id": sid, "n": 1, "agent": agent.name, "model": agent.model}

    agent_step.apply(kwargs=step).get()
    assert sim_requests(fresh_sim) == 1
    after_step = store.load(sid)
    agent_step.apply(kwargs=step).get()  # redelivered after its checkpoint
    assert sim_requests(fresh_sim) == 1
    assert store.load(sid)["steps"] == after_step["steps"]

    _rewind(sid, before_step)  # the answer was stored under its key, the record lost it
    agent_step.apply(kwargs=step).get()
    assert sim_requests(fresh_sim) == 1  # the stored answer, no second call
    rec = store.load(sid)
    assert rec["steps"][0]["response"] == after_step["steps"][0]["response"]
    (call,) = rec["tool_calls"]

    work = {"session_id": sid, "n": 1, "tool_use_id": call["tool_use_id"], "name": "spell"}
    tool_call.apply(kwargs=work).get()
    assert CALLS["spell"] == 1
    tool_call.apply(kwargs=work).get()  # redelivered after its checkpoint
    _rewind(sid, rec)  # the result was stored under its key, the record lost it
    tool_call.apply(kwargs=work).get()
    assert CALLS["spell"] == 1  # the stored outcome, not a second run
    rec = store.load(sid)
    assert rec["tool_calls"][0]["status"] == "done"
    assert rec["next_step"] == 2 and rec["transcript"][-1]["role"] == "user"

    agent_step.apply(kwargs={**step, "n": 2}).get()
    agent_step.apply(kwargs={**step, "n": 2}).get()
    assert session.wait(timeout=5)["status"] == "completed"
    assert sim_requests(fresh_sim) == 2 and CALLS["spell"] == 1


def test_resume_sends_a_lost_step_again(clean: None, fresh_sim: Any) -> None:
    agent = Agent("loop_resume", model="haiku", system="[[sim:tool_rounds=1]]", tools=[spell])
    session = agent.start("Look 'loop' up.")
    purge(QUEUES)  # the first step's message is lost
    with in_process_worker(QUEUES, concurrency=4):
        control.resume(session.id)
        result = session.wait(timeout=60)
    assert result["status"] == "completed" and result["steps"] == 2
    with pytest.raises(SessionStateError):
        control.resume(session.id)


def test_a_step_for_an_agent_this_worker_lacks_fails_the_session(
    clean: None, fresh_sim: Any
) -> None:
    agent = Agent("loop_gone", model="haiku", tools=[spell])
    session = agent.start("Spell 'loop'.")
    del AGENTS["loop_gone"]  # a worker started without the module (-I) that defines it
    step = {"session_id": session.id, "n": 1, "agent": "loop_gone", "model": agent.model}
    agent_step.apply(kwargs=step).get()
    result = session.wait(timeout=5)
    assert result["status"] == "failed"
    assert result["error"].startswith("unknown agent 'loop_gone'")
    assert sim_requests(fresh_sim) == 0

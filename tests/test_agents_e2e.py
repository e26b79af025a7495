"""Agent sessions end to end: real in-process workers on the model and tool queues, the
private Redis, the simulator over HTTP through the real SDK. A session is started,
runs as tasks, and is read back from its record."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs.agents.agent import Agent
from agentjobs.agents.postgres_store import PostgresSessionStore
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import tool
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.settings import reset_settings

QUEUES = (*all_queues(), "agentjobs.tools")
CALLS: Counter[str] = Counter()
#: Two calls that must run at the same time to pass it (one alone times out).
BARRIER = threading.Barrier(2, timeout=20)


@tool
def define(word: str) -> dict[str, str]:
    """Look a word up in the dictionary."""
    CALLS["define"] += 1
    return {"word": word, "meaning": "a thing that repeats"}


@tool
def calculate(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    CALLS["calculate"] += 1
    return "4"


@tool
def meet(name: str) -> str:
    """Meet someone (returns once a second call of this tool runs at the same time)."""
    CALLS["meet"] += 1
    BARRIER.wait()
    return f"met {name}"


@pytest.fixture(scope="module")
def module_worker(agentjobs_redis: Any, agentjobs_sim_server: Any) -> Iterator[Any]:
    """One in-process worker on the claude.* queues and agentjobs.tools for the module."""
    purge(QUEUES)
    with in_process_worker(QUEUES, concurrency=8) as worker:
        yield worker
    purge(QUEUES)


@pytest.fixture
def agent_worker(module_worker: Any, state_redis: Any, fresh_sim: Any) -> Any:
    CALLS.clear()
    BARRIER.reset()
    return module_worker


@pytest.fixture(params=["redis", "postgres"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The session store of the test (and of the in-process worker): the state store,
    or a private PostgreSQL database (AGENTJOBS_SESSION_STORE), migrated."""
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        PostgresSessionStore(url).migrate()
        monkeypatch.setenv("AGENTJOBS_SESSION_STORE", url)
        reset_settings()
    yield request.param
    monkeypatch.undo()
    reset_settings()


#: Over Sonnet's 1,024-token minimum, so the system prompt and tools are cached.
LONG_SYSTEM = "[[sim:tool_rounds=3]] You answer questions with your tools. " + (
    "Keep every answer short and check each fact with a tool first. " * 80
)


def test_a_three_tool_round_session_completes(
    backend: str, agent_worker: Any, fresh_sim: Any
) -> None:
    agent = Agent("e2e_three", model="sonnet", system=LONG_SYSTEM, tools=[define, calculate])
    session = agent.start("Define 'loop' and add 2+2.")
    result = session.wait(timeout=60)

    assert result["status"] == "completed", result
    assert result["stop_reason"] is None and result["output"]
    assert (result["steps"], result["tool_calls"]) == (4, 3)
    stats = fresh_sim.stats()
    assert stats["requests"] == stats["ok"] == 4  # one call per step, none repeated
    assert sum(CALLS.values()) == 3
    rec = session_store().load(session.id)
    roles = [m["role"] for m in rec["transcript"]]
    assert roles == ["user", "assistant"] * 4
    for n, entry in enumerate(rec["steps"], 1):
        assert entry["n"] == n and entry["status"] == "done"
        assert entry["request"]["tools"] == ["define", "calculate"]
    assert [s["response"]["stop_reason"] for s in rec["steps"]] == ["tool_use"] * 3 + ["end_turn"]
    for call in rec["tool_calls"]:
        assert call["status"] == "done" and not call["is_error"]
        assert call["idempotency_key"] == f"{session.id}:{call['step']}:{call['tool_use_id']}"
    # the prompt cache: written at the first step, read at every later one
    usage = [s["usage"] for s in rec["steps"]]
    assert usage[0]["cache_creation_input_tokens"] > 0
    assert all(u["cache_read_input_tokens"] > 0 for u in usage[1:])
    assert result["usage"]["cache_read_input_tokens"] == sum(
        u["cache_read_input_tokens"] for u in usage
    )
    assert result["cost_usd"] == pytest.approx(stats["cost_usd"], abs=1e-6)
    # the cost record shows the saving: a write premium at step 1, reads after it
    saved = [s["cache_saved_usd"] for s in rec["steps"]]
    assert saved[0] < 0 and all(x > 0 for x in saved[1:])
    assert rec["cache_saved_usd"] == pytest.approx(sum(saved)) and rec["cache_saved_usd"] > 0
    assert rec["reserved_usd"] == 0.0
    assert type(session_store()).__name__.lower().startswith(backend)


def test_parallel_tool_calls_run_at_once_and_one_step_follows(
    agent_worker: Any, fresh_sim: Any
) -> None:
    agent = Agent(
        "e2e_parallel",
        model="haiku",
        system="[[sim:tool_rounds=1]] [[sim:parallel=2]] Meet people.",
        tools=[meet],
        max_tokens=512,
    )
    result = agent.start("Meet Ann and Bob.").wait(timeout=60)

    assert result["status"] == "completed", result
    # both calls met at the barrier: they ran at the same time, each once
    assert CALLS["meet"] == 2
    assert (result["steps"], result["tool_calls"]) == (2, 2)
    assert fresh_sim.stats()["requests"] == 2  # both results in one next step
    rec = session_store().load(result["session_id"])
    (results_turn,) = [m for m in rec["transcript"][1:] if m["role"] == "user"]
    uses = [b["id"] for b in rec["transcript"][1]["content"] if b["type"] == "tool_use"]
    assert [b["tool_use_id"] for b in results_turn["content"]] == uses
    assert all(not b.get("is_error") for b in results_turn["content"])

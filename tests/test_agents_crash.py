"""A session survives kill -9 of its model worker in the middle of a call and of its
tool worker in the middle of a tool: it completes, each completed model call made once,
the tool's effect (keyed by its idempotency key) once. Subprocess workers load this
module with ``-I`` (it defines the agent and the tool), as users' workers load theirs."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agentjobs.agents.tasks  # noqa: F401  (registers the loop's tasks on the app)
from agentjobs.agents.agent import Agent
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import tool
from agentjobs.contrib.pytest_plugin import all_queues, purge
from agentjobs.contrib.testing import WorkerProcess, wait_for
from agentjobs.store import state_redis

pytestmark = pytest.mark.slow

QUEUES = (*all_queues(), "agentjobs.tools")
CALLS, GATE = "agents-crash:calls", "agents-crash:gate"


def effect_key(key: str) -> str:
    return f"agents-crash:effect:{key}"


@tool
def charge(amount: int, idempotency_key: str) -> str:
    """Charge the customer an amount (once per idempotency key)."""
    r = state_redis()
    first = r.set(effect_key(idempotency_key), "1", nx=True)  # the effect, keyed
    # Noted after the effect: the test kills the worker once it sees the note, so the
    # killed run has had its effect (a kill between a note made first and the effect
    # would leave the rerun to have it, and answer "charged").
    r.rpush(CALLS, idempotency_key)
    deadline = time.monotonic() + 60
    while not r.exists(GATE) and time.monotonic() < deadline:  # held until the test says
        time.sleep(0.05)
    return "charged" if first else "already charged"


AGENT = Agent(
    "crash_agent",
    model="haiku",
    # Each answer takes 1.5 s at the simulator: long enough to kill a worker inside it.
    system="[[sim:tool_rounds=2]] [[sim:latency_ms=1500]] You charge customers.",
    tools=[charge],
    max_tokens=256,
)


@pytest.fixture
def env(state_redis: Any, fresh_sim: Any, tmp_path: Path) -> Iterator[dict[str, str]]:
    purge(QUEUES)
    yield {
        # This module, for -I; the rest of the environment (private Redis, simulator)
        # the workers inherit from the fixtures.
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
        # A killed worker's messages come back after 4 s, its leases lapse after 1 s.
        "AGENTJOBS_VISIBILITY_TIMEOUT_S": "4",
        "AGENTJOBS_IDEMPOTENCY_LEASE_S": "1",
    }
    purge(QUEUES)


def _worker(family: str, env: dict[str, str], tmp_path: Path, name: str) -> WorkerProcess:
    args = ("-c", "4", "-I", "test_agents_crash")
    return WorkerProcess(family, env, args=args, name=name, log_dir=str(tmp_path))


def test_kill_9_of_the_model_and_the_tool_worker(
    env: dict[str, str], fresh_sim: Any, state_redis: Any, tmp_path: Path
) -> None:
    model = _worker("haiku", env, tmp_path, "crash-model-1").launch()
    tools = _worker("tools", env, tmp_path, "crash-tools-1").launch()
    started: list[WorkerProcess] = [model, tools]
    try:
        model.wait_ready()
        tools.wait_ready()
        session = AGENT.start("Charge me 20 for the booking.")
        store = session_store()

        # 1. The model worker dies inside step 1's call (the answer never arrives).
        wait_for(lambda: store.load(session.id)["steps"], timeout=30, what="step 1 admitted")
        model.kill()
        started.append(model := _worker("haiku", env, tmp_path, "crash-model-2").launch())
        model.wait_ready()

        # 2. The tool worker dies inside the first tool call.
        wait_for(lambda: state_redis.llen(CALLS) == 1, timeout=60, what="the tool running")
        tools.kill()
        started.append(tools := _worker("tools", env, tmp_path, "crash-tools-2").launch())
        tools.wait_ready()
        state_redis.set(GATE, "1")

        result = session.wait(timeout=90)
    finally:
        for w in started:
            w.stop()

    assert result["status"] == "completed", result
    assert (result["steps"], result["tool_calls"]) == (3, 2)
    rec = store.load(session.id)
    keys = [c["idempotency_key"] for c in rec["tool_calls"]]
    calls = [k.decode() for k in state_redis.lrange(CALLS, 0, -1)]
    # the killed call ran again under the same key (it never finished); its effect once
    assert calls == [keys[0], keys[0], keys[1]]
    assert all(state_redis.get(effect_key(k)) == b"1" for k in keys)
    assert rec["tool_calls"][0]["output"] == "already charged"  # the rerun saw the key
    stats = fresh_sim.stats()
    # three distinct requests; the only one sent twice is the call killed in flight
    assert stats["distinct_hashes"] == 3
    assert stats["duplicates"] <= 1 and stats["ok"] == 3 + stats["duplicates"]

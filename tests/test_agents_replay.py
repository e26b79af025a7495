"""Replaying an agent step's dead letter re-opens its session: a step dead-lettered by a
permanent error (the simulator refusing the workers' key: 401), the cause fixed, then
``agentjobs dlq replay``: the session is running again, the step calls the model, and
the loop goes on to completion. Any other dead letter is still a plain ``complete``.
Real Redis, an in-process worker, the simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from agentjobs.agents import control, record
from agentjobs.agents.agent import Agent
from agentjobs.agents.stores import session_store
from agentjobs.agents.tool import tool
from agentjobs.cli import main
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.errors import SessionStateError
from agentjobs.keys import dead_letter_id
from agentjobs.ops import metrics, session_metrics
from agentjobs.reliability import deadletter
from agentjobs.worker.tasks import complete

QUEUES = (*all_queues(), "agentjobs.tools")
RUNS: list[str] = []


@tool
def shout(word: str) -> str:
    """Say a word loudly."""
    RUNS.append(word)
    return word.upper()


AGENT = Agent(
    "replay_agent", model="haiku", system="[[sim:tool_rounds=1]]", tools=[shout], max_tokens=128
)


@pytest.fixture
def refusing(state_redis: Any, fresh_sim: Any) -> Iterator[Any]:
    """A worker, and a simulator that refuses its key until the test fixes it."""
    RUNS.clear()
    metrics.reset()
    purge(QUEUES)
    with in_process_worker(QUEUES, concurrency=4):
        fresh_sim.configure(api_key="not-the-workers-key")
        try:
            yield fresh_sim
        finally:
            fresh_sim.configure(api_key=None)
    purge(QUEUES)


def test_replaying_a_dead_step_completes_its_session(refusing: Any) -> None:
    session = AGENT.start("Shout 'replay'.")
    failed = session.wait(timeout=60)
    dl_id = dead_letter_id(f"{session.id}:1")
    assert failed["status"] == "failed" and dl_id in str(failed["error"])
    dl = deadletter.get(dl_id)
    assert dl is not None and dl.queue == "claude.haiku" and dl.error_kind == "auth"
    assert refusing.stats()["ok"] == 0

    refusing.configure(api_key=None)  # the cause fixed
    out = CliRunner().invoke(main, ["dlq", "replay", dl_id, "--json", "--timeout", "60"])
    assert out.exit_code == 0, out.output
    entry = json.loads(out.output)["replayed"][dl_id]
    assert entry["status"] == "succeeded" and entry["session_id"] == session.id
    assert entry["step"] == 1

    result = session.result()
    assert result["status"] == "completed" and result["error"] is None
    assert result["steps"] == 2 and result["tool_calls"] == 1 and len(RUNS) == 1
    rec = session.record()
    first = record.step_entry(rec, 1)
    assert first is not None and first["status"] == "done" and first["replays"] == 1
    assert rec["reserved_usd"] == 0.0 and rec["cost_usd"] > 0
    assert deadletter.get(dl_id) is None  # the step's success removed it
    assert refusing.stats()["ok"] == 2  # the replayed step and the next one
    counted = session_metrics.snapshot(agent="replay_agent")  # each ending, open again 0
    assert counted["by_status"] == {"completed": 1, "failed": 1}
    assert counted["started"] == 1 and counted["reopened"] == 1 and counted["open"] == 0

    with pytest.raises(KeyError):  # gone: nothing to replay twice
        control.replay_dead_letter(dl_id)


def test_a_session_that_is_not_failed_at_the_step_is_not_reopened(refusing: Any) -> None:
    session = AGENT.start("Shout 'again'.")
    session.wait(timeout=60)
    dl_id = dead_letter_id(f"{session.id}:1")
    rec = session.record()
    session_store().put({**rec, "status": "cancelled"})  # ended another way since
    with pytest.raises(SessionStateError, match="only a session failed at this step"):
        control.replay_dead_letter(dl_id)
    dl = deadletter.get(dl_id)
    assert dl is not None and dl.state == "dead" and dl.replays == 0  # left as it was
    out = CliRunner().invoke(main, ["dlq", "replay", dl_id])
    assert out.exit_code == 1 and f"{dl_id}: refused (session {session.id}" in out.output


def test_a_plain_dead_letter_is_replayed_as_a_complete(refusing: Any) -> None:
    res = complete.apply_async(
        kwargs={
            "model": "haiku",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
            "idempotency_key": "plain-replay",
        }
    )
    res.get(timeout=60, propagate=False)
    dl_id = dead_letter_id("plain-replay")
    assert deadletter.get(dl_id) is not None
    refusing.configure(api_key=None)
    replayed = control.replay_dead_letter(dl_id, complete.apply_async)
    assert replayed.session_id is None and replayed.result is not None
    assert replayed.result.get(timeout=60)["content"]  # an answer
    assert deadletter.get(dl_id) is None

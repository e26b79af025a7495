"""Agent sessions' metrics against a real Redis: what the loop reports, counted once per
session across processes, read back by ``snapshot`` and served by the exporter."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import redis

from agentjobs import app
from agentjobs.ops import metrics, session_metrics
from agentjobs.ops.exporter import AgentJobsCollector


def record(sid: str, status: str, steps: int, tools: int, cost: float, **extra: Any) -> dict:
    return {
        "session_id": sid,
        "agent": extra.pop("agent", "billing"),
        "status": status,
        "stop_reason": extra.pop("stop_reason", None),
        "steps": [{"n": i} for i in range(steps)],
        "tool_calls": [{"step": 0} for _ in range(tools)],
        "cost_usd": cost,
        "created_at": 1_800_000_000.0,
        "ended_at": 1_800_000_000.0 + extra.pop("seconds", 10.0),
        "chain": extra.pop("chain", [{"agent": "router", "from_agent": None}]),
        **extra,
    }


def test_sessions_tools_and_approvals_read_back(state_redis: redis.Redis) -> None:
    metrics.reset()
    for i in range(10):
        session_metrics.started("router", session_id=f"s{i}")
    session_metrics.started("router", session_id="s0")  # a redelivered start: once
    for i in range(6):
        session_metrics.ended(record(f"s{i}", "completed", steps=3, tools=2, cost=0.004))
    session_metrics.ended(record("s6", "stopped", 8, 7, 0.03, stop_reason="max_steps"))
    session_metrics.ended(record("s7", "stopped", 4, 20, 0.01, stop_reason="max_tool_calls"))
    session_metrics.ended(record("s0", "failed", 1, 1, 1.0))  # already ended: ignored
    for _ in range(5):
        session_metrics.tool_done("get_booking", "ok", 0.02)
    session_metrics.tool_done("get_booking", "invalid_input", 0.001)
    session_metrics.tool_done("refund", "error", 0.2)
    session_metrics.tool_done("refund", "timeout", 5.0)
    session_metrics.approval_waited("refund", 40.0)
    session_metrics.approval_waited("refund", 400.0)

    s = session_metrics.snapshot()
    assert s["started"] == 10 and s["ended"] == 8 and s["open"] == 2
    assert s["by_status"] == {"completed": 6, "stopped": 2}
    assert s["ceiling_hits"] == {"max_steps": 1, "max_tool_calls": 1}
    assert s["steps"]["count"] == 8
    assert s["steps"]["mean"] == pytest.approx((6 * 3 + 8 + 4) / 8)
    assert s["steps"]["p50"] is not None and 2 < s["steps"]["p50"] <= 3  # bucket (2, 3]
    assert s["tool_calls"]["mean"] == pytest.approx((12 + 7 + 20) / 8)
    assert s["cost_usd"]["total"] == pytest.approx(6 * 0.004 + 0.03 + 0.01, abs=1e-5)
    assert 0.0025 < s["cost_usd"]["p50"] <= 0.005
    assert 0.01 < s["cost_usd"]["p95"] <= 0.025 * 2  # the top two sessions: (0.01, 0.05]
    assert s["duration_s"]["count"] == 8
    assert s["tools"]["get_booking"]["by_kind"] == {"invalid_input": 1, "ok": 5}
    assert s["tools"]["get_booking"]["errors"] == 1
    assert s["tools"]["refund"] == {
        "calls": 2,
        "by_kind": {"error": 1, "timeout": 1},
        "errors": 2,
        "p50_s": s["tools"]["refund"]["p50_s"],
        "p99_s": s["tools"]["refund"]["p99_s"],
    }
    assert s["approval_wait_s"]["count"] == 2
    assert s["approval_wait_s"]["mean"] == pytest.approx(220.0)
    # the entry agent counts, not the specialist that ended it
    assert session_metrics.snapshot(agent="router")["ended"] == 8
    assert session_metrics.snapshot(agent="billing")["started"] == 0
    # a window reads the minute hashes: everything above was written this minute
    assert session_metrics.snapshot(minutes=5)["by_status"] == s["by_status"]

    # the exporter serves them with the rest
    fams = {f.name: f for f in AgentJobsCollector(app).collect()}
    samples = {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for name in ("agentjobs_sessions", "agentjobs_session_cost_usd", "agentjobs_tool_calls")
        for x in fams[name].samples
    }
    key = ("agentjobs_sessions_total", (("agent", "router"), ("status", "completed")))
    assert samples[key] == 6
    assert samples[("agentjobs_session_cost_usd_count", (("agent", "router"),))] == 8
    assert (
        samples[("agentjobs_session_cost_usd_bucket", (("agent", "router"), ("le", "0.005")))] == 6
    )
    assert (
        samples[("agentjobs_session_cost_usd_bucket", (("agent", "router"), ("le", "+Inf")))] == 8
    )
    assert samples[("agentjobs_tool_calls_total", (("kind", "ok"), ("tool", "get_booking")))] == 5


def test_a_reopened_session_counts_each_ending(state_redis: redis.Redis) -> None:
    metrics.reset()
    session_metrics.started("router", session_id="r1")
    failed = record("r1", "failed", 1, 0, 0.001)
    session_metrics.ended(failed)
    assert session_metrics.snapshot()["open"] == 0
    # the replay re-opens it at step 1 (that step's replays goes to 1); reported twice
    running = {**failed, "status": "running", "steps": [{"n": 1, "replays": 1}]}
    session_metrics.reopened(running)
    session_metrics.reopened(running)
    s = session_metrics.snapshot()
    assert s["reopened"] == 1 and s["open"] == 1 and s["by_status"] == {"failed": 1}
    done = {**running, "status": "completed", "steps": [{"n": 1, "replays": 1}, {"n": 2}]}
    session_metrics.ended(done)
    session_metrics.ended(done)  # a redelivered end of the same ending: once
    s = session_metrics.snapshot()
    assert s["by_status"] == {"completed": 1, "failed": 1}
    assert s["started"] == 1 and s["ended"] == 2 and s["open"] == 0
    assert session_metrics.snapshot(agent="router")["reopened"] == 1
    # failed again, re-opened again (a second replay of the step): counted again
    again = {**done, "status": "failed", "steps": [{"n": 1, "replays": 2}]}
    session_metrics.reopened({**again, "status": "running"})
    assert session_metrics.snapshot()["open"] == 1
    session_metrics.ended(again)
    s = session_metrics.snapshot()
    assert s["by_status"] == {"completed": 1, "failed": 2} and s["open"] == 0
    assert session_metrics.reopens({"steps": [{"replays": 1}, {"replays": 2}, {}]}) == 3


def test_record_without_chain_or_times() -> None:
    assert session_metrics.entry_agent({"agent": "solo"}) == "solo"
    assert session_metrics.entry_agent({}) == "unknown"
    assert session_metrics.entry_agent({"agent": "b", "chain": [{"agent": "a"}]}) == "a"


_WRITER = """
import sys
from agentjobs.ops import session_metrics as sm
n = int(sys.argv[1])
for i in range(20):
    sm.started("router", session_id=f"p{i}")
    sm.ended({"session_id": f"p{i}", "agent": "router", "status": "completed",
              "steps": [{}] * 2, "tool_calls": [{}], "cost_usd": 0.001})
    sm.tool_done("get_booking", "ok", 0.01)
"""


def test_many_processes_one_set_of_numbers(state_redis: redis.Redis) -> None:
    metrics.reset()
    # three processes report the same 20 sessions (as redelivered steps would) and one
    # tool call each per session: sessions count once, tool calls every time
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(n)], stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    s = session_metrics.snapshot()
    assert s["started"] == 20 and s["by_status"] == {"completed": 20}
    assert s["steps"]["mean"] == 2 and s["tool_calls"]["mean"] == 1
    assert s["tools"]["get_booking"]["calls"] == 60
    assert s["duration_s"]["count"] == 0  # no times in these records


def test_metrics_disabled_writes_nothing(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentjobs.settings import get_settings

    metrics.reset()
    monkeypatch.setenv("AGENTJOBS_METRICS_ENABLED", "false")
    get_settings.cache_clear()
    try:
        session_metrics.started("router", session_id="x")
        session_metrics.ended(record("x", "completed", 1, 0, 0.001))
        session_metrics.tool_done("t", "ok", 0.1)
        assert state_redis.keys("*metrics*") == []
    finally:
        monkeypatch.delenv("AGENTJOBS_METRICS_ENABLED")
        get_settings.cache_clear()

"""``agentjobs sessions``: list, show and migrate on both session stores; prune on each;
approve, deny and cancel on records waiting for approval, the decision's task checked on
the broker."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from click.testing import CliRunner, Result

from agentjobs.agents import stores
from agentjobs.agents.record import new_record
from agentjobs.agents.redis_store import record_key
from agentjobs.agents.store import SessionStore
from agentjobs.cli import main
from agentjobs.contrib.pytest_plugin import BROKER_DB, PrivateRedis
from agentjobs.settings import reset_settings

SONNET = "claude-sonnet-4-5"


def run(*argv: str) -> Result:
    return CliRunner().invoke(main, ["sessions", *argv])


def use_store(monkeypatch: pytest.MonkeyPatch, url: str | None) -> SessionStore:
    if url:
        monkeypatch.setenv("AGENTJOBS_SESSION_STORE", url)
    else:
        monkeypatch.delenv("AGENTJOBS_SESSION_STORE", raising=False)
    reset_settings()
    stores._store.reset()
    return stores.session_store()


@pytest.fixture
def redis_sessions(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SessionStore]:
    yield use_store(monkeypatch, None)
    stores._store.reset()


@pytest.fixture(params=["redis", "postgres"])
def store(
    request: pytest.FixtureRequest, state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SessionStore]:
    """The session store AGENTJOBS_SESSION_STORE names, empty: each backend in turn."""
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS agentjobs_sessions, agentjobs_session_checkpoints")
    s = use_store(monkeypatch, url)
    s.migrate()
    yield s
    stores._store.reset()


def waiting(session_id: str, *tool_use_ids: str, now: float | None = None) -> dict[str, Any]:
    """A record as the loop leaves it when step 1 asked for approval-gated tools."""
    t = time.time() if now is None else now
    rec = new_record(
        session_id,
        "bookings",
        "Refund booking B-1",
        tenant="acme",
        limits={"max_steps": 8, "max_tool_calls": 16, "max_cost_usd": 1.0, "timeout_s": None},
        now=t,
    )
    ids = tool_use_ids or ("toolu_1",)
    uses = [
        {"type": "tool_use", "id": i, "name": "refund", "input": {"booking": "B-1", "usd": 40}}
        for i in ids
    ]
    rec["transcript"].append(
        {"role": "assistant", "content": [{"type": "text", "text": "Refunding."}, *uses]}
    )
    rec["status"] = "waiting_approval"
    rec["turn"], rec["next_step"] = 1, None
    rec["steps"] = [
        {
            "n": 1,
            "agent": "bookings",
            "model": SONNET,
            "task_id": "t-1",
            "status": "done",
            "request": {"messages": 1, "tools": ["refund"], "max_tokens": 1024},
            "response": {"content": rec["transcript"][-1]["content"], "stop_reason": "tool_use"},
            "usage": {"input_tokens": 1200, "output_tokens": 80, "cache_read_input_tokens": 900},
            "cost_usd": 0.0021,
            "reserved_usd": 0.0,
            "latency_s": 0.75,
            "started_at": t,
            "ended_at": t + 0.75,
            "closed": False,
        }
    ]
    rec["tool_calls"] = [
        {
            "step": 1,
            "tool_use_id": i,
            "name": "refund",
            "input": {"booking": "B-1", "usd": 40},
            "status": "waiting_approval",
            "output": None,
            "is_error": False,
            "error": None,
            "kind": None,
            "content": None,
            "duration_s": None,
            "idempotency_key": f"{session_id}:1:{i}",
            "queue": "agentjobs.tools",
            "approval": None,
            "handoff": None,
            "payload": None,
            "queued_at": t,
        }
        for i in ids
    ]
    rec["cost_usd"] = 0.0021
    return rec


def completed(session_id: str, now: float) -> dict[str, Any]:
    """A finished session: a hand-off from the router, one tool call done."""
    rec = waiting(session_id, now=now)
    rec["agent"] = "bookings"
    rec["chain"] = [
        {"agent": "router", "from_agent": None, "step": 0, "payload": None},
        {"agent": "bookings", "from_agent": "router", "step": 1, "payload": {"topic": "refund"}},
    ]
    call = rec["tool_calls"][0]
    call.update(
        status="done",
        output={"refunded_usd": 40},
        kind="ok",
        content='{"refunded_usd": 40}',
        duration_s=0.012,
        approval={"decision": "approved", "by": "alice", "at": now + 5, "reason": None},
    )
    rec["transcript"].append(
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": call["content"]}
            ],
        }
    )
    rec["transcript"].append({"role": "assistant", "content": "Booking B-1 refunded: $40."})
    rec["status"], rec["output"], rec["ended_at"] = (
        "completed",
        "Booking B-1 refunded: $40.",
        now + 9,
    )
    return rec


# -- list, show, migrate: both stores ---------------------------------------------------


def test_list_table_filters_and_json(store: SessionStore) -> None:
    now = time.time()
    store.create(completed("s-done", now - 7200))
    store.create(waiting("s-wait", now=now - 60))
    other = waiting("s-other", now=now - 30)
    other["tenant"], other["status"] = "globex", "running"
    store.create(other)

    out = run("list")
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].split() == [
        "SESSION",
        "AGENT",
        "TENANT",
        "STATUS",
        "STEPS",
        "TOOLS",
        "COST",
        "AGE",
    ]
    assert [line.split()[0] for line in lines[1:]] == ["s-other", "s-wait", "s-done"]
    assert lines[2].split() == [
        "s-wait",
        "bookings",
        "acme",
        "waiting_approval",
        "1",
        "1",
        "$0.0021",
        "1m",
    ]
    assert lines[3].split()[-1] == "2h"

    out = run("list", "--status", "waiting_approval", "--tenant", "acme", "--json")
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert row["session_id"] == "s-wait" and row["steps"] == 1 and row["tool_calls"] == 1
    assert [r["session_id"] for r in json.loads(run("list", "--limit", "1", "--json").output)] == [
        "s-other"
    ]
    assert run("list", "--agent", "router").output == "no sessions\n"
    # cut by --limit: said (on stderr), never silently; not when all fit
    cut = run("list", "--limit", "2")
    assert "the newest 2 sessions; --limit N for more" in cut.output
    assert [x.split()[0] for x in cut.output.splitlines() if x.startswith("s-")] == [
        "s-other",
        "s-wait",
    ]
    assert "--limit N" not in run("list", "--limit", "3").output

    bad = run("list", "--status", "done")
    assert bad.exit_code == 2 and "'done' is not one of" in bad.output


def test_show_text_and_json(store: SessionStore) -> None:
    now = time.time()
    stored = store.create(completed("s-done", now))
    out = run("show", "s-done")
    assert out.exit_code == 0, out.output
    text = out.output
    for expected in (
        "status   completed",
        "agent    bookings   tenant acme",
        "(9.0s)",
        "chain    router -> bookings",
        '  step 1: router -> bookings: {"topic": "refund"}',
        "steps (1)",
        f"  1. bookings {SONNET} done   in 1200 out 80 cache read 900   $0.002100   0.75s"
        "   tool_use",
        "tool calls (1)",
        "  step 1 toolu_1 refund done   0.012s",
        '      input    {"booking": "B-1", "usd": 40}',
        '      output   {"refunded_usd": 40}',
        "      approval approved by alice at ",
        "transcript (4 messages)",
        "  [user] Refund booking B-1",
        "  [assistant] Refunding.",
        '  [assistant] tool_use refund toolu_1 {"booking": "B-1", "usd": 40}',
        '  [user] tool_result toolu_1 {"refunded_usd": 40}',
        "  [assistant] Booking B-1 refunded: $40.",
        "output   Booking B-1 refunded: $40.",
    ):
        assert expected in text, expected

    out = run("show", "s-done", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == stored

    missing = run("show", "nope")
    assert missing.exit_code == 1
    assert missing.output == "Error: no session 'nope'\n"


def test_show_a_tool_error(store: SessionStore) -> None:
    rec = completed("s-err", time.time())
    rec["tool_calls"][0].update(
        is_error=True, output=None, error="ValueError: booking B-1 is closed", kind="error"
    )
    store.create(rec)
    out = run("show", "s-err")
    assert "      error    ValueError: booking B-1 is closed" in out.output
    assert "      output" not in out.output


def test_migrate_postgres_twice(
    postgres_url: str, state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS agentjobs_sessions, agentjobs_session_checkpoints")
    use_store(monkeypatch, postgres_url)
    before = run("list")
    assert before.exit_code == 1
    assert before.output.startswith("Error: no session tables in ")
    assert before.output.endswith("run `agentjobs sessions migrate`\n")
    assert before.output.count("\n") == 1
    for _ in range(2):
        out = run("migrate")
        assert out.exit_code == 0, out.output
        assert out.output.startswith("session store: PostgreSQL postgresql://")
        assert out.output.endswith(": schema ready\n")
    assert json.loads(run("migrate", "--json").output) == {"store": "postgresql", "migrated": True}
    assert run("list").output == "no sessions\n"
    stores._store.reset()


def test_migrate_redis_has_nothing_to_do(redis_sessions: SessionStore) -> None:
    out = run("migrate")
    assert out.exit_code == 0 and out.output == (
        "session store: the state store (Redis): nothing to create\n"
    )
    assert json.loads(run("migrate", "--json").output) == {"store": "redis", "migrated": False}


def test_unreachable_postgres_is_one_line(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_store(monkeypatch, "postgresql://postgres:hunter2@127.0.0.1:1/none")
    out = run("list")
    assert out.exit_code == 1 and out.output.count("\n") == 1
    assert out.output.startswith("Error: cannot reach the session store postgresql://")
    assert "hunter2" not in out.output
    stores._store.reset()


def test_prune_postgres_dry_run_then_for_real(
    postgres_url: str, state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentjobs.agents import retention

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS agentjobs_sessions, agentjobs_session_checkpoints")
    monkeypatch.setenv("AGENTJOBS_SESSION_RETENTION_S", "86400")
    s = use_store(monkeypatch, postgres_url)
    s.migrate()
    s.create(completed("old", now=time.time()))
    s.create(waiting("asks"))
    assert run("prune").output == (
        "removed 0 session(s) ended and unchanged for 1 day(s), with 0 checkpoint row(s)\n"
    )
    monkeypatch.setattr(retention, "clock", lambda: time.time() + 2 * 86_400)  # 2 days on
    dry = run("prune", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.output) == {"sessions": 1, "checkpoints": 1, "dry_run": True}
    assert [r["session_id"] for r in s.list()] == ["asks", "old"]
    out = run("prune")
    assert out.exit_code == 0 and out.output == (
        "removed 1 session(s) ended and unchanged for 1 day(s), with 1 checkpoint row(s)\n"
    )
    assert [r["session_id"] for r in s.list()] == ["asks"]  # waiting for a person: kept
    stores._store.reset()


def test_prune_redis_says_its_records_expire(
    redis_sessions: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentjobs.agents import retention

    redis_sessions.create(completed("old", now=time.time()))
    assert state_ttl(redis_sessions, "old") > 0
    redis_sessions.client.delete(record_key("old"))  # as its TTL will
    monkeypatch.setattr(retention, "clock", lambda: time.time() + 31 * 86_400)
    out = run("prune")
    assert out.exit_code == 0 and out.output == (
        "the state store expires ended sessions 30 day(s) after their last write;"
        " removed 1 expired id(s) from its indexes\n"
    )
    assert run("list").output == "no sessions\n"


def state_ttl(store: Any, session_id: str) -> int:
    return int(store.client.pttl(record_key(session_id)))


def test_a_store_url_with_a_bad_port_is_one_line(
    state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # kombu's URL masking raised on it: a traceback instead of the store's error
    use_store(monkeypatch, "postgresql://postgres:hunter2@127.0.0.1:notaport/x?password=p2")
    for argv in (("list",), ("migrate",), ("show", "s1")):
        out = run(*argv)
        assert out.exit_code == 1 and out.output.count("\n") == 1, out.output
        assert out.output.startswith(
            "Error: cannot reach the session store postgresql://postgres:**@127.0.0.1:notaport/x "
        ), out.output
        assert "hunter2" not in out.output and "p2" not in out.output
    stores._store.reset()


# -- approve, deny, cancel: the decision reaches the broker -----------------------------


@pytest.fixture
def broker(agentjobs_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = agentjobs_redis.client(BROKER_DB)
    queues = ("agentjobs.tools", "claude.sonnet")
    client.delete(*queues)
    yield client
    client.delete(*queues)
    client.close()


def queued(broker: redis.Redis, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of each message waiting in ``queue`` (kombu's Redis list)."""
    out = []
    for raw in reversed(broker.lrange(queue, 0, -1)):  # pushed on the left, taken on the right
        message = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append((message["headers"]["task"], kwargs))
    return out


def test_approve_one_call_enqueues_it(redis_sessions: SessionStore, broker: redis.Redis) -> None:
    redis_sessions.create(waiting("s1", "toolu_1", "toolu_2"))
    out = run("approve", "s1", "--tool-use-id", "toolu_2", "--by", "alice")
    assert out.exit_code == 0, out.output
    assert out.output == (
        "session s1: approved toolu_2; now waiting_approval, 1 call(s) still waiting for approval\n"
    )
    rec = redis_sessions.load("s1")
    first, second = rec["tool_calls"]
    assert first["status"] == "waiting_approval" and first["approval"] is None
    assert second["status"] == "pending"
    assert second["approval"]["decision"] == "approved" and second["approval"]["by"] == "alice"
    assert queued(broker, "agentjobs.tools") == [
        (
            "agentjobs.tool_call",
            {"session_id": "s1", "n": 1, "tool_use_id": "toolu_2", "name": "refund"},
        )
    ]

    out = run("approve", "s1", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["status"] == "running"
    assert [kw["tool_use_id"] for _, kw in queued(broker, "agentjobs.tools")] == [
        "toolu_2",
        "toolu_1",
    ]

    again = run("approve", "s1")
    assert again.exit_code == 1
    assert again.output == "Error: session s1 is running: no tool call waits for approval\n"


def test_deny_answers_the_model_and_enqueues_the_next_step(
    redis_sessions: SessionStore, broker: redis.Redis
) -> None:
    redis_sessions.create(waiting("s1"))
    out = run("deny", "s1", "--reason", "over the refund limit")
    assert out.exit_code == 0, out.output
    assert out.output == "session s1: denied the calls waiting; now running\n"
    rec = redis_sessions.load("s1")
    (call,) = rec["tool_calls"]
    assert call["status"] == "denied" and call["is_error"] is True
    assert call["approval"]["reason"] == "over the refund limit"
    assert rec["transcript"][-1] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_1",
                "content": "denied by the operator: over the refund limit",
                "is_error": True,
            }
        ],
    }
    assert queued(broker, "agentjobs.tools") == []
    ((task, kwargs),) = queued(broker, "claude.sonnet")
    assert task == "agentjobs.agent_step"
    assert kwargs == {"session_id": "s1", "n": 2, "agent": "bookings", "model": SONNET}

    unknown = run("deny", "s1", "--tool-use-id", "toolu_9")
    assert unknown.exit_code == 1
    assert unknown.output.startswith("Error: session s1")


def test_cancel(redis_sessions: SessionStore, broker: redis.Redis) -> None:
    redis_sessions.create(waiting("s1"))
    out = run("cancel", "s1", "--reason", "customer left")
    assert out.exit_code == 0, out.output
    assert out.output == "session s1: cancelled; now cancelled\n"
    rec = redis_sessions.load("s1")
    assert rec["status"] == "cancelled" and rec["error"] == "cancelled: customer left"
    assert queued(broker, "agentjobs.tools") == [] and queued(broker, "claude.sonnet") == []

    again = run("cancel", "s1")
    assert again.exit_code == 1 and again.output == "Error: session s1 is already cancelled\n"
    denied = run("approve", "s1")
    assert denied.output == "Error: session s1 is cancelled: nothing to approve or deny\n"
    missing = run("cancel", "nope")
    assert missing.exit_code == 1 and missing.output == "Error: no session 'nope'\n"


def test_help_shows_examples() -> None:
    out = CliRunner().invoke(main, ["sessions", "--help"])
    assert out.exit_code == 0
    for command in ("list", "show", "approve", "deny", "cancel", "migrate", "prune"):
        assert f"agentjobs sessions {command}" in out.output

"""examples/agent_app end to end: the support desk's sessions through three worker
subprocesses (haiku, sonnet, tools), the private Redis, the simulator over HTTP and the
real SDK, the tools writing a real SQLite database."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentjobs.contrib.pytest_plugin import purge
from agentjobs.contrib.testing import worker_processes

APP = Path(__file__).resolve().parents[1] / "examples" / "agent_app"
QUEUES = ("claude.haiku", "claude.sonnet", "claude.opus", "agentjobs.tools")

#: Per kind of message: steps and tool calls of a session (the hand-off is one call).
EXPECTED = {
    "booking_lookup": (3, 2),
    "booking_change": (4, 3),
    "invoice": (3, 2),
    "refund": (4, 3),
}
SPECIALIST = {
    "booking_lookup": "desk_bookings",
    "booking_change": "desk_bookings",
    "invoice": "desk_billing",
    "refund": "desk_billing",
}


def load_demo() -> Any:
    spec = importlib.util.spec_from_file_location("agent_app_demo", APP / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["agent_app_demo"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def desk_app(
    state_redis: Any, fresh_sim: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The demo module, a fresh database, and its three workers running."""
    monkeypatch.setenv("AGENT_APP_DB", str(tmp_path / "desk.sqlite3"))
    demo = load_demo()
    import desk_db

    desk_db.create(fresh=True)
    purge(QUEUES)
    workers = demo.worker_processes(str(tmp_path), concurrency=4, prefix="t-desk")
    try:
        with worker_processes(*workers):
            yield demo
    finally:
        purge(QUEUES)


@pytest.mark.slow
def test_sessions_complete_with_handoffs_tools_approvals_and_a_denial(
    desk_app: Any, fresh_sim: Any
) -> None:
    import desk
    import desk_db

    from agentjobs.agents import control
    from agentjobs.agents.stores import session_store

    run = desk_app.run_sessions(8, timeout=120, tag="e2e")
    results, kinds = run["results"], run["kinds"]
    assert Counter(r["status"] for r in results.values()) == {"completed": 8}
    store = session_store()
    refunds_ok = changes_ok = 0
    keys = []
    for sid, kind in kinds.items():
        r, rec = results[sid], store.load(sid)
        assert (r["steps"], r["tool_calls"]) == EXPECTED[kind], (sid, kind, r)
        assert r["output"] and r["cost_usd"] > 0
        # the hand-off: router first, then the specialist the message is for
        assert [c["agent"] for c in rec["chain"]] == ["desk_router", SPECIALIST[kind]]
        assert rec["chain"][1]["payload"]["booking_id"] >= desk_db.FIRST_BOOKING
        for call in rec["tool_calls"]:
            assert call["status"] == "done", call
            if call["name"].startswith("transfer_to_"):
                continue
            assert call["idempotency_key"] == f"{sid}:{call['step']}:{call['tool_use_id']}"
            keys.append(call["idempotency_key"])
            if call["name"] == "refund_booking":
                assert call["approval"]["decision"] == "approved"
                assert call["approval"]["by"] == "demo"
                refunds_ok += not call["is_error"]
            if call["name"] == "change_booking_nights":
                changes_ok += not call["is_error"]
    assert sorted(run["approved"]) == sorted(s for s, k in kinds.items() if k == "refund")
    # every tool ran once per call (no crash here), and every write is one row
    db = desk_db.counts()
    assert db["attempts"] == db["keys"] == len(keys) == 12
    assert db["keys_attempted_twice"] == 0
    assert db["refunds"] == refunds_ok and db["changes"] == changes_ok == 2
    # one model call per step, none twice
    sim = fresh_sim.stats()
    assert sim["ok"] == sum(r["steps"] for r in results.values())
    assert sim["duplicates"] == 0
    s = desk_app.summary(run)
    assert s["status"] == {"completed": 8} and s["approved_by_demo"] == 2
    assert s["steps"]["max"] == 4 and s["tool_calls"]["max"] == 3

    # A refund denied instead: the model is told, the session goes on, nothing is written.
    kind, text = desk_app.message(11)
    assert kind == "refund"
    session = desk.router.start(text, session_id="desk-deny-1")
    waiting = session.wait(timeout=60, until=("waiting_approval",))
    assert waiting["status"] == "waiting_approval"
    control.deny(session.id, reason="not eligible", by="test")
    assert session.wait(timeout=60)["status"] == "completed"
    (refund,) = [c for c in session.record()["tool_calls"] if c["name"] == "refund_booking"]
    assert refund["status"] == "denied" and refund["is_error"]
    assert refund["error"] == "denied by the operator: not eligible"
    assert refund["approval"]["decision"] == "denied" and refund["approval"]["by"] == "test"
    after = desk_db.counts()
    assert after["refunds"] == db["refunds"]
    assert after["attempts_by_tool"]["refund_booking"] == db["attempts_by_tool"]["refund_booking"]
    assert (
        after["attempts_by_tool"]["lookup_invoice"] == db["attempts_by_tool"]["lookup_invoice"] + 1
    )

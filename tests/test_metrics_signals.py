"""The less common task outcomes, through a real worker: revoked (expired) and
rejected (a pickled message, an unknown agentjobs task), and live worker registration."""

from __future__ import annotations

from typing import Any

from agentjobs import app, complete
from agentjobs.contrib.testing import wait_for
from agentjobs.ops import metrics


def _outcomes() -> dict[str, float]:
    return metrics.read_total().by("tasks", "outcome")


def test_revoked_and_rejected_are_counted(state_redis: Any, sim: Any, purge_queues: None) -> None:
    from conftest import in_process_worker

    metrics.reset()
    complete.apply_async(kwargs={"prompt": "too late"}, expires=0.0)
    # JSON only: a pickled message is refused unread
    app.send_task(
        "agentjobs.complete",
        kwargs={"prompt": "pickled"},
        queue="claude.haiku",
        serializer="pickle",
    )
    app.send_task("agentjobs.nope", kwargs={}, queue="claude.haiku")
    with in_process_worker(queues=("claude.haiku",), concurrency=2, hostname="sig@test"):
        wait_for(
            lambda: _outcomes().get("revoked") == 1 and _outcomes().get("rejected") == 2,
            timeout=20,
            what=f"revoked and rejected counted, got {_outcomes()}",
        )
        assert metrics.workers_alive(["claude.haiku", "claude.opus"]) == {
            "claude.haiku": 1,
            "claude.opus": 0,
        }
    snap = metrics.read_total()
    assert snap.sum("tasks_published") == 3  # every message published counts once
    assert snap.sum("tasks", outcome="succeeded") == 0
    assert snap.sum("api_requests") == 0

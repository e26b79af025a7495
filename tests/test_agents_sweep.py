"""The session sweep: a running session whose work was lost is resumed (by hand, and by
a worker's own sweep thread), one whose work is only queued, streaming or deferred is
left alone, and a resume of a step still in flight makes no second model call (the
claim on ``{session}:{n}``). Real Redis, real workers, the simulator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agentjobs.agents import control, record, sweep
from agentjobs.agents.agent import Agent
from agentjobs.agents.stores import session_store
from agentjobs.cli import main
from agentjobs.contrib.pytest_plugin import all_queues, in_process_worker, purge
from agentjobs.contrib.testing import WorkerProcess, wait_for
from agentjobs.limiter.admission import get_limiter
from agentjobs.reliability import idempotency
from agentjobs.settings import reset_settings
from agentjobs.worker.app import app

QUEUES = (*all_queues(), "agentjobs.tools")

# One step, no tools: a session is one model call.
PLAIN = Agent("sweep_plain", model="haiku", max_tokens=64)
# Each answer takes 1.5 s at the simulator: long enough to look at it while it streams.
SLOW = Agent("sweep_slow", model="haiku", system="[[sim:latency_ms=1500]]", max_tokens=64)


@pytest.fixture
def clean(state_redis: Any, fresh_sim: Any) -> Iterator[None]:
    purge(QUEUES)
    yield
    purge(QUEUES)


def _sweep() -> sweep.Report:
    # No grace, no interval lock, one look: the test decides when a session is stale.
    return sweep.sweep(app, grace_s=0, every_s=0, confirm_s=0)


def test_a_lost_step_is_resumed_and_a_queued_one_is_not(clean: None, fresh_sim: Any) -> None:
    session = PLAIN.start("Say hello.")
    report = _sweep()
    assert report.checked == 1 and report.queued == 1 and report.resumed == []
    purge(QUEUES)  # the step's message is lost (as in the Redis broker's pop window)
    report = _sweep()
    assert report.resumed == [session.id]
    rec = session_store().load(session.id)
    assert rec["resumes"] == 1 and rec["resumed_by"] == "sweep"
    # The resume's message is queued now, and younger than the record: not sent twice.
    assert _sweep().resumed == []
    with in_process_worker(QUEUES, concurrency=4):
        assert session.wait(timeout=60)["status"] == "completed"
    assert fresh_sim.stats()["requests"] == 1
    assert _sweep().checked == 0  # ended: nothing to look at


def test_the_sweep_runs_once_per_interval_across_workers(clean: None) -> None:
    session = PLAIN.start("Say hello.")
    purge(QUEUES)
    first = sweep.sweep(app, grace_s=0, every_s=60, confirm_s=0)
    second = sweep.sweep(app, grace_s=0, every_s=60, confirm_s=0)  # another worker, at once
    assert first.resumed == [session.id]
    assert second.skipped == "a sweep ran in this interval" and second.resumed == []
    # A session changed within the grace is not looked at.
    assert sweep.sweep(app, grace_s=3600, every_s=0, confirm_s=0).checked == 0


def test_resuming_a_streaming_step_makes_no_second_call(clean: None, fresh_sim: Any) -> None:
    with in_process_worker(QUEUES, concurrency=4):
        session = SLOW.start("Say hello slowly.")
        key = f"{session.id}:1"
        wait_for(
            lambda: idempotency.lease_key(key).encode() in _leases(),
            timeout=30,
            what="step 1 calling the model",
        )
        report = _sweep()
        assert report.resumed == []
        # A live lease: in flight (unless the 1.5 s answer ended before the look).
        assert report.leased == 1 or session.status() == "completed"
        control.resume(session.id)  # sent again anyway, while the answer streams
        result = session.wait(timeout=60)
    assert result["status"] == "completed" and result["steps"] == 1
    stats = fresh_sim.stats()
    assert stats["requests"] == 1 and stats["duplicates"] == 0


def test_resuming_a_step_deferred_by_a_retry_makes_no_second_answer(
    clean: None, fresh_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 529, then a retry 2..3 s later: the resume lands in the countdown.
    monkeypatch.setenv("AGENTJOBS_RETRY_BACKOFF_BASE_S", "3")
    reset_settings()
    fresh_sim.configure(fault_529=1.0)
    try:
        with in_process_worker(QUEUES, concurrency=4):
            session = PLAIN.start("Say hello.")
            key = f"{session.id}:1"
            wait_for(lambda: idempotency.attempts(key), timeout=30, what="a failed attempt")
            fresh_sim.configure(fault_529=0.0)
            control.resume(session.id)
            result = session.wait(timeout=60)
    finally:
        reset_settings()
    assert result["status"] == "completed"
    stats = fresh_sim.stats()
    assert stats["ok"] == 1 and stats["duplicates"] == 0  # one answer, paid once
    assert record.step_entry(session.record(), 1)["status"] == "done"


def test_resuming_steps_the_limiter_deferred_makes_no_second_call(
    clean: None, fresh_sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One request per 2 s and any wait past 0.3 s deferred through the broker: of two
    # sessions started at once, the second's step waits in a countdown.
    for name, value in {"LIMIT_HAIKU_RPM": 30, "LIMITER_BURST_S": 2.0}.items():
        monkeypatch.setenv(f"AGENTJOBS_{name}", str(value))
    monkeypatch.setenv("AGENTJOBS_LIMITER_MAX_SLEEP_S", "0.3")
    reset_settings()
    try:
        with in_process_worker(QUEUES, concurrency=4):
            sessions = [PLAIN.start("Say hello."), PLAIN.start("Say hi.")]
            wait_for(
                lambda: get_limiter().snapshot("haiku")["deferred"] >= 1,
                timeout=30,
                what="a step deferred by the limiter",
            )
            # Held by a worker (the countdown), leased or queued: the sweep leaves both.
            assert sweep.sweep(app, grace_s=0, every_s=0, confirm_s=0.5).resumed == []
            for s in sessions:  # resumed by hand all the same
                if s.status() == "running":
                    control.resume(s.id)
            results = [s.wait(timeout=60) for s in sessions]
    finally:
        monkeypatch.undo()
        reset_settings()
    assert [r["status"] for r in results] == ["completed", "completed"]
    stats = fresh_sim.stats()
    assert stats["requests"] == 2 and stats["duplicates"] == 0


def test_sessions_resume_cli(clean: None) -> None:
    session = PLAIN.start("Say hello.")
    purge(QUEUES)
    result = CliRunner().invoke(main, ["sessions", "resume", session.id, "--json"])
    assert result.exit_code == 0, result.output
    assert '"resumes": 1' in result.output and '"resumed_by": "cli"' in result.output
    text = CliRunner().invoke(main, ["sessions", "resume", session.id])
    assert text.exit_code == 0
    assert text.output.startswith(f"session {session.id}: resumed (step 1); now running")
    control.cancel(session.id)
    ended = CliRunner().invoke(main, ["sessions", "resume", session.id])
    assert ended.exit_code == 1
    assert f"session {session.id} is cancelled: nothing to resume" in ended.output
    assert len(ended.output.strip().splitlines()) == 1
    assert "Send again what a session waits for" in (
        CliRunner().invoke(main, ["sessions", "resume", "--help"]).output
    )


def test_a_workers_own_sweep_resumes_a_lost_step(
    clean: None, fresh_sim: Any, tmp_path: Path
) -> None:
    session = PLAIN.start("Say hello.")
    purge(QUEUES)  # lost before any worker ran
    env = {
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
        ),
        "AGENTJOBS_LEDGER_SWEEP_INTERVAL_S": "1",
        "AGENTJOBS_LEDGER_GRACE_S": "1",
    }
    w = WorkerProcess(
        "haiku", env, args=("-c", "2", "-I", "test_agents_sweep"), log_dir=str(tmp_path)
    )
    try:
        w.start(ready_timeout=60)
        result = session.wait(timeout=60)
    finally:
        w.stop()
    assert result["status"] == "completed", w.log()
    assert session.record()["resumed_by"] == "sweep"
    assert fresh_sim.stats()["requests"] == 1


def _leases() -> set[bytes]:
    from agentjobs.store import state_redis

    return set(state_redis().scan_iter(match=idempotency.lease_key("*")))

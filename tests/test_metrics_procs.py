"""Many worker processes, one set of numbers: two worker subprocesses (a threads pool and
a prefork pool, whose task signals fire in child processes) against the simulator; the
exporter's totals equal the simulator's counters, and both workers are seen alive."""

from __future__ import annotations

from typing import Any

import pytest

from agentjobs import app, complete
from agentjobs.contrib.testing import WorkerProcess, wait_for, worker_processes
from agentjobs.ops import metrics
from agentjobs.ops.exporter import AgentJobsCollector


def _samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in AgentJobsCollector(app).collect()
        for s in fam.samples
    }


def _sum(samples: dict[Any, float], name: str, **where: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all(dict(labels).get(k) == x for k, x in where.items())
    )


@pytest.mark.slow
def test_totals_over_worker_processes(
    state_redis: Any, fresh_sim: Any, purge_queues: None, tmp_path: Any
) -> None:
    metrics.reset()
    threads = WorkerProcess("haiku", {}, args=("-c", "4"), log_dir=str(tmp_path))
    prefork = WorkerProcess("haiku", {}, args=("-P", "prefork", "-c", "2"), log_dir=str(tmp_path))
    with worker_processes(threads, prefork):
        wait_for(
            lambda: metrics.workers_alive(["claude.haiku"])["claude.haiku"] == 2,
            timeout=15,
            what="both workers registered",
        )
        results = [complete.delay(prompt=f"procs {i}", model="haiku") for i in range(40)]
        done = [r.get(timeout=60) for r in results]
        assert len({d["worker"] for d in done}) == 2  # both processes did work
        wait_for(
            lambda: metrics.read_total().sum("tasks") == len(results),
            timeout=10,
            what="every outcome counted",
        )
        s = _samples()
        assert _sum(s, "agentjobs_workers", queue="claude.haiku") == 2
    sim = fresh_sim.stats()
    assert _sum(s, "agentjobs_tasks_published_total") == 40
    assert _sum(s, "agentjobs_tasks_received_total") == 40
    assert _sum(s, "agentjobs_tasks_started_total") == 40
    assert _sum(s, "agentjobs_tasks_total", outcome="succeeded") == 40
    assert _sum(s, "agentjobs_api_requests_total") == sim["messages"] == 40
    assert _sum(s, "agentjobs_tokens_total", kind="input") == sim["input_tokens"]
    assert _sum(s, "agentjobs_tokens_total", kind="output") == sim["output_tokens"]
    assert _sum(s, "agentjobs_cost_usd_total") == pytest.approx(sum(d["cost_usd"] for d in done))
    assert _sum(s, "agentjobs_queue_wait_seconds_count") == 40
    assert _sum(s, "agentjobs_end_to_end_seconds_count") == 40
    # a worker that stopped (SIGTERM) unregisters at once
    assert metrics.workers_alive(["claude.haiku"])["claude.haiku"] == 0

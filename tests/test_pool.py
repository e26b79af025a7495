"""The resizable threads pool: ``-P threads --autoscale`` grows and shrinks it."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from celery import concurrency

from agentjobs import app, complete
from agentjobs.contrib.testing import WorkerProcess, wait_for, worker_processes
from agentjobs.worker.pool import ThreadPool


def test_threads_means_the_resizable_pool() -> None:
    assert app is not None  # loading the app registers the alias
    assert concurrency.get_implementation("threads") is ThreadPool


def test_limit_bounds_running_tasks_and_moves_with_grow_and_shrink() -> None:
    pool = ThreadPool(limit=2)
    release = threading.Event()
    peak = 0
    lock = threading.Lock()

    def task() -> None:
        nonlocal peak
        with lock:
            peak = max(peak, pool.running)
        release.wait(10)

    try:
        for _ in range(6):
            pool.apply_async(task)
        wait_for(lambda: pool.running == 2, timeout=5, what="two tasks running")
        pool.grow(3)
        wait_for(lambda: pool.running == 5, timeout=5, what="five tasks after grow(3)")
        pool.shrink(4)
        assert pool.limit == 1 and pool.num_processes == 1
        release.set()
        wait_for(lambda: pool.running == 0, timeout=5, what="all done")
        assert peak <= 5
        # After shrink(4): one at a time again.
        release.clear()
        for _ in range(3):
            pool.apply_async(task)
        wait_for(lambda: pool.running == 1, timeout=5, what="one task running")
        assert pool.running == 1
    finally:
        release.set()
        pool.on_stop()


@pytest.mark.slow
def test_autoscale_worker_grows_under_load(fresh_sim: Any, tmp_path: Path) -> None:
    fresh_sim.configure(latency_median_ms=400, latency_spread=0)
    worker = WorkerProcess("sonnet", {}, args=("--autoscale", "6,1"), log_dir=str(tmp_path))
    try:
        with worker_processes(worker):
            run = uuid.uuid4().hex[:6]
            jobs = [complete.delay(prompt=f"scale {run} {i}", model="sonnet") for i in range(24)]
            results = [j.get(timeout=60) for j in jobs]
    finally:
        fresh_sim.configure(latency_median_ms=0, latency_spread=0.5)
    assert all(r["queue"] == "claude.sonnet" for r in results)
    assert "Scaling up" in worker.log() and "Unrecoverable error" not in worker.log()
    assert 1 < fresh_sim.stats()["max_in_flight"] <= 6

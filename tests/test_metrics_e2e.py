"""After a run with injected faults, 429s, dead letters, cache hits and repeats, every
counter (scraped over HTTP from the exporter, and ``agentjobs stats --json``) equals
what the simulator's request log and the task results say."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentjobs import app, complete
from agentjobs.contrib.testing import wait_for
from agentjobs.errors import DeadLetteredError
from agentjobs.limiter import pause
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cost_usd
from agentjobs.ops import metrics
from agentjobs.ops.exporter import registry
from agentjobs.reliability import deadletter
from agentjobs.settings import reset_settings


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AGENTJOBS_RETRY_BACKOFF_BASE_S", "0.02")
    monkeypatch.setenv("AGENTJOBS_RETRY_BACKOFF_MAX_S", "0.1")
    reset_settings()
    yield
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def faulty_sim(fresh_sim: Any, tmp_path: Path) -> Any:
    old = fresh_sim.config
    log = tmp_path / "sim.jsonl"
    fresh_sim.configure(log=str(log), fault_529=0.08, fault_500=0.05, seed=7)
    fresh_sim.reset()
    fresh_sim.log_path = log
    yield fresh_sim
    fresh_sim.configure(
        log=None,
        fault_529=old.fault_529,
        fault_500=old.fault_500,
        seed=old.seed,
    )
    pause.resume("opus")  # the spend-limit 429s paused the Opus group


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(samples: dict[Any, float], name: str, **where: str) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all(dict(labels).get(k) == x for k, x in where.items())
    )


@pytest.mark.slow
def test_counters_equal_simulator_log_and_results(
    state_redis: Any, faulty_sim: Any, fast_retries: Any, worker: Any, redis_server: Any
) -> None:
    metrics.reset()
    unique = [complete.delay(prompt=f"metrics e2e {i}", model="haiku") for i in range(36)]
    bad = [complete.delay(prompt=f"bad {i} [[sim:error=400]]", model="sonnet") for i in range(3)]
    # 429s: a spend cap answer is a 429 (dead-lettered at once; pauses only Opus)
    bad += [complete.delay(prompt=f"spent {i} [[sim:error=spend]]", model="opus") for i in range(2)]
    cached_prompt = dict(prompt="cache me", model="haiku", temperature=0)
    first_cached = complete.delay(**cached_prompt)
    first_cached.get(timeout=60)
    second_cached = complete.delay(**cached_prompt)
    keyed = [complete.delay(prompt=f"keyed {i}", idempotency_key=f"k{i}") for i in range(4)]
    for r in [*unique, *bad, second_cached, *keyed]:
        r.get(timeout=90, propagate=False)
    repeats = [complete.delay(prompt=f"keyed {i}", idempotency_key=f"k{i}") for i in range(4)]
    for r in repeats:
        r.get(timeout=60, propagate=False)
    submitted = [*unique, *bad, first_cached, second_cached, *keyed, *repeats]

    results = [r.result for r in submitted if r.successful()]
    failures = [r.result for r in submitted if r.failed()]
    dead = [e for e in failures if isinstance(e, DeadLetteredError)]
    # The signal handlers of the last task run after its result is stored: wait for them.
    wait_for(
        lambda: metrics.read_total().sum("tasks") == len(submitted),
        timeout=10,
        what="every outcome counted",
    )
    faulty_sim.flush_log()
    log = [json.loads(line) for line in faulty_sim.log_path.read_text().splitlines()]
    log = [e for e in log if e["path"] == "/v1/messages"]
    by_status = Counter(str(e["status"] or 0) for e in log)
    assert by_status["429"] > 0 and (by_status["529"] + by_status["500"]) > 0, by_status
    assert len(dead) >= 5 and any(r["cached"] for r in results)

    # The expected figures, from the log and the results only.
    originals = [r for r in results if not r["cached"]]
    replays = {r.task_id for r in repeats}
    originals = [
        r.result
        for r in submitted
        if r.successful() and not r.result["cached"] and r.id not in replays
    ]
    # The exception comes back from the result backend with its message only.
    dl_ids = [re.search(r"dead-lettered as (dl_\w+)", str(e)).group(1) for e in dead]  # type: ignore[union-attr]
    dl_attempts = [len(deadletter.get(i).attempts) for i in dl_ids]  # type: ignore[union-attr]
    expected_retries = sum(r["attempts"] - 1 for r in originals) + sum(n - 1 for n in dl_attempts)
    tokens = {
        "input": sum(e["input_tokens"] for e in log),
        "output": sum(e["output_tokens"] for e in log),
        "cache_creation": sum(e["cache_creation_input_tokens"] for e in log),
        "cache_read": sum(e["cache_read_input_tokens"] for e in log),
    }
    cost = sum(
        cost_usd(
            e["model"],
            Usage(**{k: e[k] for k in Usage.model_fields if k in e and k != "cache_creation"}),
        )
        for e in log
        if e["status"] == 200
    )
    assert expected_retries > 0 and sum(r["cached"] for r in results) == 1

    # 1. over HTTP from the exporter
    server, thread = __import__("prometheus_client").start_http_server(
        0, addr="127.0.0.1", registry=registry(app)
    )
    try:
        s = scrape(server.server_address[1])
    finally:
        server.shutdown()
        thread.join(5)
    assert total(s, "agentjobs_tasks_published_total") == len(submitted)
    assert total(s, "agentjobs_tasks_total", outcome="succeeded") == len(results)
    assert total(s, "agentjobs_tasks_total", outcome="dead_lettered") == len(dead)
    assert total(s, "agentjobs_tasks_total", outcome="failed") == len(failures) - len(dead)
    assert total(s, "agentjobs_api_requests_total") == len(log)
    for status, n in by_status.items():
        assert total(s, "agentjobs_api_requests_total", status=status) == n, status
    assert total(s, "agentjobs_rate_limited_total") == by_status["429"]
    retried = sum(
        v
        for (n, labels), v in s.items()
        if n == "agentjobs_retries_total" and dict(labels)["failure_class"] != "deferred"
    )
    assert retried == expected_retries
    assert total(s, "agentjobs_dead_lettered_total") == len(dead)
    assert total(s, "agentjobs_cache_hits_total") == 1
    assert total(s, "agentjobs_cache_misses_total") == len(results) - 1
    for kind, n in tokens.items():
        assert total(s, "agentjobs_tokens_total", kind=kind) == n, kind
    assert total(s, "agentjobs_cost_usd_total") == pytest.approx(cost, abs=1e-9)
    assert total(s, "agentjobs_call_seconds_count") == len(log)
    assert total(s, "agentjobs_end_to_end_seconds_count") == len(results) + len(failures)
    assert total(s, "agentjobs_dead_letters") == deadletter.count()
    assert total(s, "agentjobs_calls_in_flight") == 0

    # 2. `agentjobs stats --json`, as a process
    env = {**os.environ}
    out = subprocess.run(
        [sys.executable, "-m", "agentjobs", "stats", "--json", "--minutes", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    data = json.loads(out)
    for fig in (data["window"], data["total"]):
        assert fig["tasks_published"] == len(submitted)
        assert fig["tasks_succeeded"] == len(results)
        assert fig["tasks_dead_lettered"] == len(dead)
        assert fig["api_requests"] == len(log)
        assert fig["api_requests_by_status"] == dict(by_status)
        assert fig["rate_limited"] == by_status["429"]
        assert fig["rate_limited_share"] == pytest.approx(by_status["429"] / len(log), abs=1e-6)
        assert sum(v for k, v in fig["retries_by_class"].items() if k != "deferred") == (
            expected_retries
        )
        assert sum(fig["dead_lettered_by_class"].values()) == len(dead)
        assert fig["dead_lettered_by_class"].get("bad_request") == 3
        assert fig["cache_hits"] == 1
        assert fig["tokens"] == tokens
        assert fig["cost_usd"] == pytest.approx(cost, abs=1e-9)
        assert fig["call"]["count"] == len(log)
        assert fig["call"]["p99_s"] is not None
    assert data["live"]["dead_letters"] == deadletter.count()

"""The exporter watches agent sessions' tools queue (and a tool's own queue, given with
``--queue``) as it watches the claude.* ones: messages waiting there with no worker
are served as depth > 0 and workers 0, and promtool, fed those very samples, fires
AgentJobsNoWorker for each queue. Real Redis broker; no worker runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from agentjobs import app
from agentjobs.agents import tool
from agentjobs.ops import depth, metrics
from agentjobs.ops.exporter import AgentJobsCollector
from agentjobs.worker import install

ALERTS = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alerts.yml"
OWN = "refunds_only"  # a tool's own queue: @tool(queue="refunds_only")


def test_the_tools_queue_is_named_as_the_agents_and_worker_name_it() -> None:
    assert depth.TOOLS_QUEUE == tool.TOOLS_QUEUE == install.TOOLS_QUEUE
    assert depth.TOOLS_QUEUE in depth.known_queues()
    assert depth.known_queues([OWN, depth.TOOLS_QUEUE])[-2:] == [depth.TOOLS_QUEUE, OWN]


@pytest.fixture
def broker(redis_server: Any, state_redis: redis.Redis) -> Iterator[redis.Redis]:
    b = redis.Redis.from_url(os.environ["AGENTJOBS_BROKER_URL"])

    def empty() -> None:
        for q in (depth.TOOLS_QUEUE, OWN):
            for k in b.keys(q + "*"):
                b.delete(k)

    empty()
    yield b
    empty()


def test_waiting_tool_calls_without_a_worker_fire_no_worker(
    broker: redis.Redis, tmp_path: Path
) -> None:
    for i in range(3):  # nothing consumes them: they wait
        app.send_task("agentjobs.tool_call", kwargs={"n": i}, queue=depth.TOOLS_QUEUE)
    app.send_task("agentjobs.tool_call", kwargs={"n": 9}, queue=OWN)
    # The publish counters name these queues too, but they need not be there (reset, a
    # publisher with metrics off, messages older than the store): the exporter must
    # watch the tools queue, and a queue it is given, regardless.
    metrics.reset()
    samples = {
        (s.name, s.labels.get("queue")): s.value
        for fam in AgentJobsCollector(app, queues=[OWN]).collect()
        for s in fam.samples
        if s.name in ("agentjobs_queue_depth", "agentjobs_workers")
    }
    for q, waiting in ((depth.TOOLS_QUEUE, 3), (OWN, 1)):
        assert samples[("agentjobs_queue_depth", q)] == waiting
        assert samples[("agentjobs_workers", q)] == 0
    assert ("agentjobs_queue_depth", OWN) not in {  # only when asked for
        (s.name, s.labels.get("queue"))
        for fam in AgentJobsCollector(app).collect()
        for s in fam.samples
    }

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    alert = next(
        r
        for g in yaml.safe_load(ALERTS.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == "AgentJobsNoWorker"
    )
    series = [
        {"series": f'{name}{{queue="{q}"}}', "values": f"{int(samples[(name, q)])}x10"}
        for q in (depth.TOOLS_QUEUE, OWN)
        for name in ("agentjobs_queue_depth", "agentjobs_workers")
    ]
    expected = [
        {
            "exp_labels": {"severity": "critical", "queue": q},
            "exp_annotations": {
                "summary": f"No live worker consumes {q} while messages wait",
                "description": alert["annotations"]["description"],
            },
        }
        for q in (depth.TOOLS_QUEUE, OWN)
    ]
    test = {
        "rule_files": [str(ALERTS)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "1m", "alertname": "AgentJobsNoWorker", "exp_alerts": []},
                    {"eval_time": "5m", "alertname": "AgentJobsNoWorker", "exp_alerts": expected},
                ],
            }
        ],
    }
    path = tmp_path / "no-worker-test.yml"
    path.write_text(yaml.safe_dump(test))
    out = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr

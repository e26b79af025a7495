"""``agentjobs.install`` on a project app configured from Celery's own environment
variables: CELERY_BROKER_URL and CELERY_RESULT_BACKEND name the project's broker and
backend (DBs 3 and 4 of the private Redis), unlike AGENTJOBS_BROKER_URL/RESULT_BACKEND.
agentjobs refuses such variables for its own app only (tests/test_config.py); here the
project's worker and a process that publishes run as subprocesses, the simulator answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

import agentjobs
from agentjobs import ConfigurationError
from agentjobs.contrib.pytest_plugin import PrivateRedis
from agentjobs.contrib.testing import spawn, terminate, wait_for
from agentjobs.ops import metrics
from agentjobs.worker import hosts
from agentjobs.worker.app import app as own_app

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "tests" / "envproj"

pytestmark = pytest.mark.slow


@pytest.fixture
def env_of_project(
    agentjobs_redis: PrivateRedis,
    fresh_sim: Any,
    state_redis: redis.Redis,
    celery_commands_site: Path,
) -> dict[str, str]:
    """Also the celery.commands entry point of pyproject.toml, made visible to Celery as
    installing agentjobs makes it (``celery -A envproj agentjobs ...``)."""
    for db in (3, 4):
        agentjobs_redis.client(db).flushdb()
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(celery_commands_site), str(ROOT)]),
        "CELERY_BROKER_URL": f"{agentjobs_redis.url}/3",
        "CELERY_RESULT_BACKEND": f"{agentjobs_redis.url}/4",
    }


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    args = ["-m", "celery", "-A", "envproj", "worker", "-Q", "claude.haiku", "-P", "threads"]
    proc = spawn(
        [sys.executable, *args, "-c", "2", "-n", "envproj@%h", "-l", "warning"],
        env=env,
        cwd=PROJECT,
    )
    wait_for(
        lambda: proc.poll() is not None or metrics.workers_alive(["claude.haiku"]),
        timeout=60,
        what="the project's worker to register",
    )
    assert proc.poll() is None, "the project's worker exited (refused its CELERY_* variables?)"
    return proc


@pytest.fixture
def worker_of_project(env_of_project: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = _start_worker(env_of_project)
    yield proc
    terminate(proc, 30)


PUBLISH = """
import json, envproj
from agentjobs import complete
res = complete.delay(prompt="hi [[sim:output_tokens=5]]")
print(json.dumps({"id": res.id, "result": res.get(timeout=60)}))
"""


def test_a_project_app_configured_from_celery_broker_url_publishes_and_its_worker_answers(
    env_of_project: dict[str, str],
    worker_of_project: subprocess.Popen[bytes],
    agentjobs_redis: PrivateRedis,
    fresh_sim: Any,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PUBLISH],
        env=env_of_project,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    result = out["result"]
    assert result["usage"]["output_tokens"] == 5 and result["worker"].startswith("envproj@")
    assert fresh_sim.stats()["messages"] == 1
    # Through the project's backend (CELERY_RESULT_BACKEND), not agentjobs' own.
    assert agentjobs_redis.client(4).exists(f"celery-task-meta-{out['id']}")
    assert not agentjobs_redis.client(2).exists(f"celery-task-meta-{out['id']}")


def test_celery_a_project_agentjobs_submit_reads_results_from_the_projects_backend(
    env_of_project: dict[str, str], agentjobs_redis: PrivateRedis, tmp_path: Path
) -> None:
    """The CLI extension sends through the project's app and polls that app's result
    backend (here set in its configuration), not agentjobs' own AGENTJOBS_RESULT_BACKEND."""
    env = {k: v for k, v in env_of_project.items() if k != "CELERY_RESULT_BACKEND"}
    env["ENVPROJ_RESULT_BACKEND"] = f"{agentjobs_redis.url}/4"
    worker = _start_worker(env)
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "hi [[sim:output_tokens=4]]"}) + "\n")
    args = ["-A", "envproj", "agentjobs", "submit", str(jobs), "--timeout", "30"]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "celery", *args, "--no-progress", "--json"],
            env=env,
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        terminate(worker, 30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[0])
    assert line["status"] == "SUCCESS", line
    assert line["result"]["worker"].startswith("envproj@")
    assert agentjobs_redis.client(4).exists(f"celery-task-meta-{line['task_id']}")


def test_the_projects_unreachable_broker_is_named_as_the_projects(
    env_of_project: dict[str, str], tmp_path: Path
) -> None:
    """`celery -A envproj agentjobs ...` with the project's broker down: the one line
    names the project's app, not AGENTJOBS_BROKER_URL (which is not what it used)."""
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(json.dumps({"prompt": "hi"}) + "\n")
    env = {**env_of_project, "CELERY_BROKER_URL": "redis://127.0.0.1:1/3"}  # nothing there
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "envproj", "agentjobs", "submit", str(jobs)],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "Traceback" not in line, line
    assert "cannot reach the broker redis://127.0.0.1:1/3" in line, line
    assert "Celery app 'envproj'" in line and "AGENTJOBS_BROKER_URL" not in line, line


def test_a_short_visibility_timeout_is_refused_on_a_redis_broker_named_by_the_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Celery takes the broker from CELERY_BROKER_URL before the configuration: so does
    install's check of the Redis visibility timeout."""
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    app = Celery("shortvt", set_as_current=False)
    app.config_from_object({"broker_transport_options": {"visibility_timeout": 30}})
    try:
        agentjobs.install(app)
        with pytest.raises(ConfigurationError, match="AGENTJOBS_VISIBILITY_TIMEOUT_S"):
            app.conf.get("broker_transport_options")
    finally:
        hosts.remove(app)
        own_app.set_current()

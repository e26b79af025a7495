"""A project's own Celery app with agentjobs installed on it (``agentjobs.install``).

tests/userproj/proj is such a project: its own app on its own broker and result backend
(DBs 3 and 4 of the private Redis, not agentjobs' DB 0), a Flask view that calls
``complete.delay``. Its worker (``celery -A proj worker -Q claude.haiku -P threads``) and
its web server (``flask run``) run as subprocesses, as in production; the simulator
answers. The CLI extension (``celery -A proj agentjobs dlq list``) reads what that worker
dead-lettered.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentjobs.contrib.pytest_plugin import PrivateRedis
from agentjobs.contrib.testing import free_port, spawn, terminate, wait_for
from agentjobs.ops import metrics

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "tests" / "userproj"

pytestmark = pytest.mark.slow


@pytest.fixture
def project_env(
    agentjobs_redis: PrivateRedis,
    fresh_sim: Any,
    state_redis: redis.Redis,
    celery_commands_site: Path,
) -> dict[str, str]:
    """The environment of the project's processes: its broker and backend, agentjobs'
    state store and the simulator (from the fixtures), and the celery.commands entry
    point of pyproject.toml made visible to Celery, as installing agentjobs makes it."""
    for db in (3, 4):
        agentjobs_redis.client(db).flushdb()
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT), str(celery_commands_site), str(ROOT)]),
        "PROJ_BROKER_URL": f"{agentjobs_redis.url}/3",
        "PROJ_RESULT_BACKEND": f"{agentjobs_redis.url}/4",
    }


@pytest.fixture
def project_worker(project_env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    args = ["-m", "celery", "-A", "proj", "worker", "-Q", "claude.haiku", "-P", "threads"]
    proc = spawn(
        [sys.executable, *args, "-c", "4", "-n", "proj@%h", "-l", "warning"],
        env=project_env,
        cwd=PROJECT,
    )
    wait_for(
        lambda: proc.poll() is not None or metrics.workers_alive(["claude.haiku"]),
        timeout=60,
        what="the project's worker to register",
    )
    assert proc.poll() is None, "the project's worker exited"
    yield proc
    terminate(proc, 30)


@pytest.fixture
def project_web(project_env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    proc = spawn(
        [sys.executable, "-m", "flask", "--app", "proj.web", "run", "--port", str(port)],
        env=project_env,
        cwd=PROJECT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: proc.poll() is not None or _up(url), timeout=60, what="flask to listen")
    assert proc.poll() is None, "flask exited"
    yield url
    terminate(proc, 10)


def _up(url: str) -> bool:
    try:
        _get(f"{url}/summaries/none")
    except OSError:
        return False
    return True


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, json.loads(r.read())


def _celery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "proj", *args],
        env=env,
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_flask_view_of_the_project_calls_claude_through_its_own_worker(
    project_env: dict[str, str],
    project_worker: subprocess.Popen[bytes],
    project_web: str,
    fresh_sim: Any,
    agentjobs_redis: PrivateRedis,
) -> None:
    before = metrics.read_total().sum("tasks", queue="claude.haiku", outcome="succeeded")
    status, body = _post(f"{project_web}/summaries", {"text": "hi [[sim:output_tokens=7]]"})
    assert status == 202
    task_id = body["task_id"]
    done = wait_for(
        lambda: (s := _get(f"{project_web}/summaries/{task_id}"))["state"] == "SUCCESS" and s,
        timeout=60,
        what="the call to finish",
    )
    result = done["result"]
    assert result["queue"] == "claude.haiku" and result["usage"]["output_tokens"] == 7
    assert result["worker"].startswith("proj@")
    assert fresh_sim.stats()["messages"] == 1
    # Through the project's broker and result backend, not agentjobs' own (DB 0, DB 2).
    assert agentjobs_redis.client(4).exists(f"celery-task-meta-{task_id}")
    assert not agentjobs_redis.client(2).exists(f"celery-task-meta-{task_id}")
    # The worker's signal handlers ran there: the outcome is counted in the state store.
    after = metrics.read_total().sum("tasks", queue="claude.haiku", outcome="succeeded")
    assert after == before + 1

    # `celery -A proj agentjobs ...`: a dead letter of that worker, listed by the CLI
    # extension against the project's app.
    status, body = _post(f"{project_web}/summaries", {"text": "[[sim:error=400]] no"})
    failed_id = body["task_id"]
    wait_for(
        lambda: _get(f"{project_web}/summaries/{failed_id}")["state"] == "FAILURE",
        timeout=60,
        what="the refused call to be dead-lettered",
    )
    listed = _celery(project_env, "agentjobs", "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)["records"]
    assert [d["task_id"] for d in letters] == [failed_id]
    assert letters[0]["queue"] == "claude.haiku" and letters[0]["error_kind"] == "bad_request"


@pytest.mark.parametrize("when", ["1", "late"], ids=["in-its-configuration", "after-a-read"])
def test_a_conflicting_setting_of_the_project_is_refused_in_one_line(
    project_env: dict[str, str], when: str
) -> None:
    proc = _celery(
        {**project_env, "PROJ_PICKLE": when},
        "worker", "-Q", "claude.haiku", "-P", "threads", "-c", "1",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "task_serializer='pickle' (agentjobs needs 'json')" in lines[0]


def test_a_command_against_a_project_app_it_refuses_says_so_in_one_line(
    project_env: dict[str, str],
) -> None:
    proc = _celery({**project_env, "PROJ_PICKLE": "1"}, "agentjobs", "stats")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and not proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "task_serializer='pickle' (agentjobs needs 'json')" in lines[0]


def test_celery_lists_the_agentjobs_extension(
    project_env: dict[str, str],
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "celery", "agentjobs", "--help"],
        env=project_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dlq" in proc.stdout and "celery -A proj agentjobs dlq list" in proc.stdout


def test_the_projects_own_worker_needs_no_credentials_and_runs_its_own_tasks(
    project_env: dict[str, str], agentjobs_redis: PrivateRedis
) -> None:
    from celery import Celery

    env = {k: v for k, v in project_env.items() if not k.startswith("ANTHROPIC_")}
    env["AGENTJOBS_SIM_URL"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env["AGENTJOBS_CONNECT_TIMEOUT_S"] = "0.5"
    args = ["worker", "-P", "threads", "-c", "2", "-l", "warning"]
    # One of the project's own queues only: it starts, and runs the project's task.
    proc = spawn(
        [sys.executable, "-m", "celery", "-A", "proj", *args, "-Q", "proj.default"],
        env=env,
        cwd=PROJECT,
    )
    # Meanwhile, a worker of agentjobs' queues runs the preflight: no credentials, no
    # simulator, no start.
    refused = _celery(env, *args, "-Q", "claude.haiku")
    assert refused.returncode == 1 and "worker not started" in refused.stderr, refused.stderr
    caller = Celery(
        "caller", broker=env["PROJ_BROKER_URL"], backend=env["PROJ_RESULT_BACKEND"],
        set_as_current=False,
    )  # fmt: skip
    try:
        job = caller.send_task("proj.add", args=(2, 3), queue="proj.default")
        assert job.get(timeout=60) == 5
    finally:
        terminate(proc, 30)
        caller.close()


def test_the_pytest_plugin_runs_the_projects_own_app(
    project_env: dict[str, str], tmp_path: Path
) -> None:
    """A project's test suite with the plugin: its app (installed from conftest.py, with
    a broker nobody listens on) is re-pointed at the private Redis and its worker runs."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text("import proj.celery  # noqa: F401\n")
    (suite / "test_summary.py").write_text(
        "from agentjobs import complete\n\n\n"
        "def test_summary(agentjobs_worker, agentjobs_app):\n"
        "    assert agentjobs_app.main == 'proj' and complete.app is agentjobs_app\n"
        "    r = complete.delay(prompt='hi [[sim:output_tokens=3]]').get(timeout=60)\n"
        "    assert r['usage']['output_tokens'] == 3\n"
    )
    env = {**project_env, "PROJ_BROKER_URL": "redis://127.0.0.1:1/0"}
    args = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "agentjobs.contrib.pytest_plugin"]
    proc = subprocess.run(
        [sys.executable, *args, str(suite)],
        env=env,
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout

"""The Flask example's agent sessions run on agentjobs' own workers as the compose stack
starts them: ``agentjobs worker haiku -I examples.flask_app.agents`` from the checkout's
root (the image's WORKDIR), a subprocess that never imports the web module. The session
is started from the example's endpoint (Flask test client) in this process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentjobs import app
from agentjobs.contrib.pytest_plugin import PrivateRedis
from agentjobs.contrib.testing import spawn, terminate, wait_for
from agentjobs.worker import hosts

ROOT = Path(__file__).resolve().parents[1]
AGENTS = "examples.flask_app.agents"  # .env.example's AGENT_MODULES

pytestmark = pytest.mark.slow


def load_flask_example() -> Any:
    """app.py as `flask --app app` loads it: its directory on sys.path (for agents.py)."""
    where = ROOT / "examples" / "flask_app"
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))
    spec = importlib.util.spec_from_file_location("flask_example", where / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def web(
    agentjobs_redis: PrivateRedis, state_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The example's web app on the private Redis (the broker agentjobs' workers use)."""
    monkeypatch.setenv("BROKER_URL", agentjobs_redis.broker_url)
    monkeypatch.setenv("RESULT_BACKEND", agentjobs_redis.backend_url)
    before = list(hosts.HOSTS)
    module = load_flask_example()
    yield module.app.test_client()
    for installed in [h for h in hosts.HOSTS if h not in before]:
        hosts.remove(installed)
    (hosts.HOSTS[-1] if hosts.HOSTS else app).set_current()


@pytest.fixture
def compose_worker(agentjobs_redis: PrivateRedis, fresh_sim: Any, tmp_path: Path) -> Iterator[Path]:
    """``agentjobs worker haiku -I examples.flask_app.agents``, by its console script,
    from the checkout's root; yields its log."""
    log = tmp_path / "worker.log"
    script = Path(sys.executable).with_name("agentjobs")
    cmd = [str(script), "worker", "haiku", "-I", AGENTS, "-c", "2", "-n", "flaskex@%h"]
    cmd += ["-l", "info", "--without-gossip", "--without-mingle"]
    env = {**os.environ, **agentjobs_redis.env, "PYTHONPATH": ""}  # nothing but the cwd
    with open(log, "wb") as out:
        proc = spawn(cmd, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(
                lambda: proc.poll() is not None or b" ready." in log.read_bytes(),
                timeout=60,
                what="the worker to be ready",
            )
            assert proc.poll() is None, log.read_text(errors="replace")
            yield log
        finally:
            terminate(proc, 30)


def test_a_session_from_the_flask_endpoint_runs_on_a_worker_loading_agent_modules(
    web: Any, compose_worker: Path, fresh_sim: Any
) -> None:
    r = web.post("/sessions", json={"input": "Say hi [[sim:output_tokens=5]]"})
    assert r.status_code == 202, r.get_json()
    url = r.get_json()["status_url"]
    done = wait_for(
        lambda: (s := web.get(url).get_json())["status"] in ("completed", "failed") and s,
        timeout=60,
        what="the session to end",
    )
    assert done["status"] == "completed", done
    assert done["agent"] == "flask_example" and len(done["output"].split()) == 5

    # The session ends at its checkpoint, inside the step's task: Celery logs the task's
    # success just after, so the line is waited for.
    def step_succeeded() -> bool:
        lines = compose_worker.read_text(errors="replace").splitlines()
        return any("Task agent:flask_example:" in ln and "succeeded" in ln for ln in lines)

    wait_for(step_succeeded, timeout=30, what="the step's task logged as succeeded")

"""agentjobs' pytest plugin as a user meets it: a project of its own, its own tests,
pytest in a subprocess that loads the plugin through the ``pytest11`` entry point
declared in pyproject.toml.

The user's shell points agentjobs somewhere nothing listens (their development Redis
and API, say), and the user's test module imports ``complete`` at the top, so the
Celery app is configured from that environment before any fixture runs: the fixtures
must re-point it for ``complete.delay(...).get()`` to pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PLUGIN = "agentjobs.contrib.pytest_plugin"

#: The user's environment: agentjobs and the API pointed where nothing listens (port 1).
USER_ENV = {
    "AGENTJOBS_BROKER_URL": "redis://127.0.0.1:1/0",
    "AGENTJOBS_REDIS_URL": "redis://127.0.0.1:1/1",
    "AGENTJOBS_RESULT_BACKEND": "redis://127.0.0.1:1/2",
    "ANTHROPIC_API_KEY": "sk-ant-the-developers-own-key",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:1",
}

CONFTEST = """
import json
import os


def pytest_unconfigure(config):
    # What the session left behind, once every fixture is torn down.
    names = os.environ["USER_ENV_NAMES"].split(",")
    with open(os.environ["ENV_AFTER"], "w") as f:
        json.dump({name: os.environ.get(name) for name in names}, f)
"""

TEST_FIXTURES = """
import os

import pytest

from agentjobs import DeadLetteredError, complete


def test_before_any_fixture_the_app_has_its_broker_and_backend():
    # An app used before the fixtures (here: its broker pool and result backend built)
    # keeps them: the fixtures must drop them, not only change the URLs.
    assert complete.app.backend.url == os.environ["AGENTJOBS_RESULT_BACKEND"]
    assert complete.app.pool.connection.port == 1


def test_complete_goes_through_the_fixtures(agentjobs_worker, agentjobs_sim, agentjobs_redis):
    result = complete.delay(prompt="Summarise: the plugin works", model="haiku").get(timeout=60)
    assert result["text"] and result["queue"] == "claude.haiku"
    assert agentjobs_sim.stats()["by_group"] == {"haiku": 1}
    assert os.environ["AGENTJOBS_BROKER_URL"] == agentjobs_redis.broker_url
    with agentjobs_redis.client(2) as backend:
        assert backend.exists(f"celery-task-meta-{result['task_id']}")


@pytest.mark.agentjobs_worker(queues=["claude.sonnet"], concurrency=2)
def test_the_marker_chooses_the_queues(agentjobs_worker, agentjobs_sim, agentjobs_app):
    consumed = {q.name for q in agentjobs_worker.consumer.task_consumer.queues}
    assert consumed == {"claude.sonnet"}
    result = complete.delay(prompt="Which queue?", model="sonnet").get(timeout=60)
    assert result["queue"] == "claude.sonnet"
    # The simulator was reset for this test: the first test's call is not counted.
    assert agentjobs_sim.stats()["by_group"] == {"sonnet": 1}


def test_a_refused_request_is_dead_lettered(agentjobs_worker, agentjobs_sim):
    with pytest.raises(DeadLetteredError):
        complete.delay(prompt="[[sim:error=400]] Summarise nothing").get(timeout=60)
    assert agentjobs_sim.stats()["by_status"] == {"400": 1}


def test_the_state_store_starts_empty(agentjobs_state):
    assert agentjobs_state.dbsize() == 0
"""

TEST_INERT = """
import os
import sys


def test_loading_the_plugin_changes_nothing(request):
    assert request.config.pluginmanager.has_plugin("agentjobs.contrib.pytest_plugin")
    names = os.environ["USER_ENV_NAMES"].split(",")
    assert {name: os.environ.get(name) for name in names} == {
        name: os.environ[f"EXPECTED_{name}"] for name in names
    }
    heavy = ("celery", "redis", "aiohttp", "anthropic", "agentjobs.settings")
    assert [name for name in heavy if name in sys.modules] == []
"""


def entry_point_site(tmp_path: Path) -> Path:
    """A directory whose dist-info declares pyproject.toml's ``pytest11`` entry points:
    on sys.path, pytest finds the plugin there as it does in an installed agentjobs
    (the shared development install is not re-run for it)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    plugins = project["entry-points"]["pytest11"]
    info = tmp_path / "site" / "agentjobs_entry_points-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: agentjobs-entry-points\n")
    lines = "".join(f"{name} = {target}\n" for name, target in plugins.items())
    (info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    return info.parent


def user_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without agentjobs' own test settings, with the user's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTJOBS_", "ANTHROPIC_"))}
    site = entry_point_site(tmp_path)
    return {
        **env,
        **USER_ENV,
        **{f"EXPECTED_{name}": value for name, value in USER_ENV.items()},
        "USER_ENV_NAMES": ",".join(USER_ENV),
        "ENV_AFTER": str(tmp_path / "env_after.json"),
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
    }


def run_user_project(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n")
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_app.py").write_text(textwrap.dedent(tests))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=user_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=240,
    )


def test_a_users_complete_delay_goes_through_the_fixtures(tmp_path: Path) -> None:
    run = run_user_project(tmp_path, TEST_FIXTURES)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "5 passed" in run.stdout
    # Every variable the fixtures set is back as the user had it.
    assert json.loads((tmp_path / "env_after.json").read_text()) == USER_ENV


def test_installed_but_unused_the_plugin_changes_nothing(tmp_path: Path) -> None:
    run = run_user_project(tmp_path, TEST_INERT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


def test_this_suite_loads_the_plugin_once_with_the_entry_point_installed(
    tmp_path: Path,
) -> None:
    """tests/conftest.py names the plugin in pytest_plugins; pytest refuses a module
    registered under two names, so the entry point's name must be the module's."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(entry_point_site(tmp_path)), str(REPO)]),
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "tests/test_contrib_plugin.py",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr

"""agentjobs' configuration keeps its promises whatever surrounds it.

A project's own ``celeryconfig.py`` (in the directory a process starts in, so first on
``sys.path``) never configures agentjobs' app; a project that configures the app from
its own settings cannot change its serializer, acks or routes; Celery's own
``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` cannot silently override the
AGENTJOBS_* settings; a bad setting is refused as one line naming it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentjobs import ConfigurationError, app
from agentjobs.contrib.testing import publish_pickled, spawn, terminate, wait_for
from agentjobs.settings import check_celery_environment, get_settings, reset_settings
from agentjobs.worker.app import AgentJobsCelery, celery_settings
from agentjobs.worker.config import REQUIRED, ROUTER

#: What a project's root may well hold: its own Celery settings, the opposite of ours.
HOSTILE = """\
task_serializer = "pickle"
result_serializer = "pickle"
accept_content = ["pickle", "json"]
result_accept_content = ["pickle", "json"]
task_acks_late = False
task_reject_on_worker_lost = False
task_routes = None
broker_url = {broker!r}
result_backend = {backend!r}
"""

#: The app's settings as a subprocess sees them, and proof that the project's module was
#: the one `import celeryconfig` finds there.
PROBE = """\
import json
import celeryconfig
from agentjobs import app
c = app.conf
print(json.dumps({
    "theirs": celeryconfig.task_serializer,
    "task_serializer": c.task_serializer,
    "result_serializer": c.result_serializer,
    "accept_content": list(c.accept_content),
    "result_accept_content": list(c.result_accept_content or []),
    "task_acks_late": c.task_acks_late,
    "task_reject_on_worker_lost": c.task_reject_on_worker_lost,
    "task_routes": list(c.task_routes or []),
}))
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with a hostile celeryconfig.py, on the tests' own broker."""
    conf = app.conf
    text = HOSTILE.format(broker=conf.broker_url, backend=conf.result_backend)
    (tmp_path / "celeryconfig.py").write_text(text)
    return tmp_path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    yield monkeypatch
    monkeypatch.undo()
    reset_settings()


def _agentjobs_settings_kept(conf: dict[str, Any]) -> None:
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["accept_content"] == conf["result_accept_content"] == ["json"]
    assert conf["task_acks_late"] is True and conf["task_reject_on_worker_lost"] is True
    assert conf["task_routes"][0] == ROUTER


# -- a project's celeryconfig.py ----------------------------------------------------------


def test_a_projects_celeryconfig_does_not_configure_agentjobs(project: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=project, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    conf = json.loads(proc.stdout)
    assert conf["theirs"] == "pickle"  # the project's module is the one on sys.path
    _agentjobs_settings_kept(conf)


@pytest.mark.slow
def test_a_worker_started_beside_a_projects_celeryconfig_keeps_json_and_late_acks(
    project: Path, sim: Any, purge_queues: None
) -> None:
    name = f"hostile-{uuid.uuid4().hex[:8]}@test"
    log = project / "worker.log"
    cmd = [sys.executable, "-m", "agentjobs", "worker", "haiku", "-c", "2", "-n", name]
    cmd += ["-l", "info", "--without-gossip", "--without-mingle"]
    # As root, Celery refuses to start a worker that accepts pickle: allow it, so that a
    # worker running the project's settings would run (and unpickle) and this test see it.
    env = {**os.environ, "C_FORCE_ROOT": "1"}
    with open(log, "wb") as out:
        proc = spawn(cmd, cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(
            lambda: proc.poll() is not None or b" ready." in log.read_bytes(),
            timeout=60,
            what="the worker to be ready",
        )
        assert proc.poll() is None, log.read_text()
        replies = app.control.inspect(destination=[name], timeout=5).conf(with_defaults=True)
        assert replies and name in replies, replies
        _agentjobs_settings_kept(replies[name])

        marker = project / "unpickled"
        with app.connection_for_write() as conn:
            publish_pickled(conn, app, marker, str(uuid.uuid4()))
        wait_for(
            lambda: "Refusing to deserialize" in log.read_text(errors="replace"),
            timeout=20,
            what="the worker to refuse the pickled message",
        )
        assert not marker.exists()  # never unpickled
    finally:
        terminate(proc, 30)


# -- a project's own settings for agentjobs' app -------------------------------------------


class DjangoSettings:
    """Django's way: CELERY_* names, read with namespace="CELERY"."""

    CELERY_RESULT_EXPIRES = 60
    CELERY_TASK_ROUTES = {"myproject.*": {"queue": "myproject"}}


def test_a_projects_settings_keep_the_required_ones_and_add_routers_after_ours() -> None:
    own = AgentJobsCelery("project")
    own.config_from_object(DjangoSettings, namespace="CELERY")
    conf = own.conf
    for name, value in REQUIRED.items():
        if name != "task_routes":
            assert conf[name] == value, name
    assert list(conf.task_routes) == [ROUTER, DjangoSettings.CELERY_TASK_ROUTES]
    assert conf.result_expires == 60  # the project's other settings are its own


class Conflicting:
    CELERY_TASK_SERIALIZER = "pickle"
    CELERY_ACCEPT_CONTENT = ["json", "pickle"]
    CELERY_TASK_ACKS_LATE = False


def test_a_projects_conflicting_settings_are_refused_in_one_line() -> None:
    own = AgentJobsCelery("project")
    own.config_from_object(Conflicting, namespace="CELERY")
    for _attempt in range(2):  # and again at the next access: never half-configured
        with pytest.raises(ConfigurationError) as err:
            own.conf.get("task_serializer")
        message = str(err.value)
        assert "\n" not in message
        for name in ("task_serializer='pickle'", "accept_content", "task_acks_late=False"):
            assert name in message


def test_celery_settings_for_django_are_agentjobs_values() -> None:
    values = celery_settings("CELERY")
    assert values["CELERY_TASK_SERIALIZER"] == "json"
    assert values["CELERY_TASK_ACKS_LATE"] is True
    assert values["CELERY_BROKER_URL"] == get_settings().broker_url
    own = AgentJobsCelery("project")
    own.config_from_object(type("Settings", (), values), namespace="CELERY")
    assert own.conf.task_serializer == "json"  # loads without a conflict


# -- CELERY_BROKER_URL / CELERY_RESULT_BACKEND --------------------------------------------


def _run(args: list[str], extra_env: dict[str, str], timeout: float = 60) -> Any:
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, **extra_env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _refused_in_one_line(proc: Any, *names: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line, line
    for name in names:
        assert name in line


ELSEWHERE = "redis://127.0.0.1:1/5"  # nothing listens there


@pytest.mark.parametrize(
    "args",
    [
        ["-m", "agentjobs", "stats"],
        ["-m", "agentjobs", "worker", "haiku"],
        ["-m", "celery", "-A", "agentjobs", "worker", "-Q", "claude.haiku"],
    ],
    ids=["cli", "worker", "celery-worker"],
)
def test_celery_broker_url_that_differs_is_refused_at_start(args: list[str]) -> None:
    proc = _run(args, {"CELERY_BROKER_URL": ELSEWHERE}, timeout=30)
    _refused_in_one_line(proc, "CELERY_BROKER_URL", "AGENTJOBS_BROKER_URL", ELSEWHERE)


def test_celery_result_backend_that_differs_is_refused_at_start() -> None:
    proc = _run(["-m", "agentjobs", "worker", "haiku"], {"CELERY_RESULT_BACKEND": ELSEWHERE}, 30)
    _refused_in_one_line(proc, "CELERY_RESULT_BACKEND", "AGENTJOBS_RESULT_BACKEND")


def test_a_process_that_sends_is_refused_before_anything_is_published() -> None:
    script = (
        "from agentjobs import ConfigurationError, complete\n"
        "try:\n"
        "    complete.delay(prompt='hi')\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    proc = _run(["-c", script], {"CELERY_BROKER_URL": ELSEWHERE}, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "CELERY_BROKER_URL" in proc.stdout and "AGENTJOBS_BROKER_URL" in proc.stdout


@pytest.mark.parametrize(
    "var", ["CELERY_BROKER_URL", "CELERY_BROKER_READ_URL", "CELERY_BROKER_WRITE_URL"]
)
def test_every_celery_broker_variable_is_checked(env: pytest.MonkeyPatch, var: str) -> None:
    env.setenv(var, "redis://:secret@elsewhere:6379/0")
    reset_settings()
    with pytest.raises(ConfigurationError) as err:
        check_celery_environment(get_settings())
    assert var in str(err.value) and "AGENTJOBS_BROKER_URL" in str(err.value)
    assert "secret" not in str(err.value)  # passwords are masked


def test_the_same_url_in_both_is_accepted(env: pytest.MonkeyPatch) -> None:
    env.setenv("CELERY_BROKER_URL", os.environ["AGENTJOBS_BROKER_URL"])
    env.setenv("CELERY_RESULT_BACKEND", os.environ["AGENTJOBS_RESULT_BACKEND"])
    env.setenv("CELERY_BROKER_READ_URL", "")  # empty: unset, for Celery too
    reset_settings()
    assert get_settings().broker_url == os.environ["AGENTJOBS_BROKER_URL"]


# -- bad settings: one line naming the variable -------------------------------------------


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("AGENTJOBS_BUDGET_TENANTS", "{bad"),
        ("AGENTJOBS_RETRY_POLICIES", '{"opus": '),
    ],
)
def test_malformed_json_settings_name_the_variable(
    env: pytest.MonkeyPatch, var: str, value: str
) -> None:
    env.setenv(var, value)
    reset_settings()
    with pytest.raises(ConfigurationError) as err:
        get_settings()
    assert str(err.value).startswith(f"bad setting: {var}")
    assert "\n" not in str(err.value)


PRICES = {"input": 10, "cache_write_5m": 20, "cache_write_1h": 30, "cache_read": 1, "output": 50}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read"),
        ("{bad", "not valid JSON"),
        (json.dumps([PRICES]), "want a JSON object"),
        (json.dumps({"gpt-4o": PRICES}), "unknown model 'gpt-4o'"),
        (json.dumps({"claude-haiku-4-5": {"input": 1}}), "claude-haiku-4-5: want"),
        (json.dumps({"claude-haiku-4-5": {**PRICES, "output": "50"}}), "claude-haiku-4-5: want"),
    ],
    ids=["missing", "not-json", "not-an-object", "unknown-model", "fields", "not-a-number"],
)
def test_a_bad_prices_file_is_refused_when_the_settings_load(
    env: pytest.MonkeyPatch, tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "prices.json"
    if content is not None:
        path.write_text(content)
    env.setenv("AGENTJOBS_PRICES_FILE", str(path))
    reset_settings()
    with pytest.raises(ConfigurationError) as err:
        get_settings()
    message = str(err.value)
    assert message.startswith("bad setting: AGENTJOBS_PRICES_FILE") and expected in message
    assert "\n" not in message


def test_the_prices_file_is_a_setting(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"claude-haiku-4-5": PRICES}))
    env.setenv("AGENTJOBS_PRICES_FILE", str(path))
    reset_settings()
    assert get_settings().prices_file == path
    env.setenv("AGENTJOBS_PRICES_FILE", "")  # empty: unset
    reset_settings()
    assert get_settings().prices_file is None

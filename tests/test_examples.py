"""The Flask and Django examples, end to end: test client -> queue -> real worker -> simulator.

Each example has a Celery app of its own with ``agentjobs.install`` on it, pointed at the
private Redis (BROKER_URL, RESULT_BACKEND); the fixtures' worker serves its queues.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentjobs import app
from agentjobs.contrib.pytest_plugin import PrivateRedis
from agentjobs.contrib.testing import wait_for
from agentjobs.worker import hosts

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUEUES = ("claude.haiku", "claude.sonnet", "claude.opus")

#: post(json_body_or_raw_text) -> (status, json, location); get(url) -> json
Post = Callable[[Any], tuple[int, dict[str, Any], str | None]]
Get = Callable[[str], dict[str, Any]]


@pytest.fixture(autouse=True)
def _clean_state_store(state_redis: redis.Redis) -> None:
    """Each test starts with an empty state store: no limiter pause, budget or cache left
    by an earlier test in the session."""


@pytest.fixture
def project_env(agentjobs_redis: PrivateRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples' own Celery apps on the private Redis: broker DB 0, results DB 2."""
    monkeypatch.setenv("BROKER_URL", agentjobs_redis.broker_url)
    monkeypatch.setenv("RESULT_BACKEND", agentjobs_redis.backend_url)


def load_flask_example() -> Any:
    # As `flask --app app` does: its directory on sys.path (app.py imports agents.py).
    if str(EXAMPLES / "flask_app") not in sys.path:
        sys.path.insert(0, str(EXAMPLES / "flask_app"))
    spec = importlib.util.spec_from_file_location("flask_example", EXAMPLES / "flask_app/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flask_client() -> tuple[Post, Get, str]:
    module = load_flask_example()
    client = module.app.test_client()

    def post(body: Any) -> tuple[int, dict[str, Any], str | None]:
        data = body if isinstance(body, str) else json.dumps(body)
        r = client.post("/jobs", data=data, content_type="application/json")
        return r.status_code, r.get_json(), r.headers.get("Location")

    def get(url: str) -> dict[str, Any]:
        r = client.get(url)
        assert r.status_code == 200
        return r.get_json()  # type: ignore[no-any-return]

    return post, get, "/jobs/"


@pytest.fixture(scope="module")
def django_setup(agentjobs_redis: PrivateRedis) -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES / "django_app"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobsite.settings"
    os.environ["BROKER_URL"] = agentjobs_redis.broker_url
    os.environ["RESULT_BACKEND"] = agentjobs_redis.backend_url
    import django

    django.setup()
    import jobsite  # what Django does at startup: loads jobsite/celery.py

    yield
    hosts.remove(jobsite.celery_app)  # agentjobs publishes through its own app again
    app.set_current()
    for name in ("DJANGO_SETTINGS_MODULE", "BROKER_URL", "RESULT_BACKEND"):
        os.environ.pop(name, None)
    sys.path.remove(str(EXAMPLES / "django_app"))


def django_client() -> tuple[Post, Get, str]:
    from django.test import Client

    client = Client()

    def post(body: Any) -> tuple[int, dict[str, Any], str | None]:
        data = body if isinstance(body, str) else json.dumps(body)
        r = client.post("/jobs/", data=data, content_type="application/json")
        return r.status_code, r.json(), r.headers.get("Location")

    def get(url: str) -> dict[str, Any]:
        r = client.get(url)
        assert r.status_code == 200
        return r.json()  # type: ignore[no-any-return]

    return post, get, "/jobs/"


@pytest.fixture(params=["flask", "django"])
def web(request: pytest.FixtureRequest) -> Iterator[tuple[Post, Get, str]]:
    if request.param == "django":
        request.getfixturevalue("django_setup")
        yield django_client()
        return
    request.getfixturevalue("project_env")
    before = list(hosts.HOSTS)
    yield flask_client()
    for installed in [h for h in hosts.HOSTS if h not in before]:
        hosts.remove(installed)  # agentjobs publishes through the app it had before
    (hosts.HOSTS[-1] if hosts.HOSTS else app).set_current()


def queue_lengths() -> dict[str, int]:
    client = redis.Redis.from_url(app.conf.broker_url)
    try:
        return {q: int(client.llen(q)) for q in QUEUES}
    finally:
        client.close()


def finished(get: Get, url: str) -> dict[str, Any]:
    return wait_for(
        lambda: (s := get(url))["state"] in ("SUCCESS", "FAILURE") and s,
        timeout=20,
        what=f"{url} to finish",
    )


def test_submit_202_then_state_and_result(
    web: tuple[Post, Get, str], fresh_sim: Any, worker: Any
) -> None:
    post, get, prefix = web
    status, body, location = post({"prompt": "hi [[sim:output_tokens=12]]", "model": "sonnet"})
    assert status == 202
    task_id = body["task_id"]
    assert location == body["status_url"] == prefix + task_id
    state = finished(get, location)
    assert state["task_id"] == task_id and state["state"] == "SUCCESS"
    result = state["result"]
    assert result["queue"] == "claude.sonnet" and result["model"] == "claude-sonnet-4-6"
    assert result["usage"]["output_tokens"] == 12
    assert len(result["text"].split()) == 12  # the simulator's 12 one-token words
    assert fresh_sim.stats()["messages"] == 1


def test_a_failed_call_is_reported_with_its_error(
    web: tuple[Post, Get, str], fresh_sim: Any, worker: Any
) -> None:
    post, get, _ = web
    status, _, location = post({"prompt": "[[sim:error=403]]", "model": "haiku"})
    assert status == 202 and location
    state = finished(get, location)
    assert state["state"] == "FAILURE"
    assert "PermissionDenied" in state["error"]["type"] + state["error"]["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"prompt": "hi", "max_tokens": 0}, "max_tokens must be at least 1"),
        ({"prompt": "hi", "model": "gpt-4o"}, "unknown model 'gpt-4o'"),
        ("not json", "send a JSON object of complete() arguments"),
        ([1, 2], "send a JSON object of complete() arguments"),
    ],
)
def test_bad_requests_are_400_and_enqueue_nothing(
    web: tuple[Post, Get, str], purge_queues: None, body: Any, message: str
) -> None:
    post, _, _ = web
    before = queue_lengths()
    status, payload, _ = post(body)
    assert status == 400
    assert message in payload["error"]
    assert queue_lengths() == before


def test_unknown_task_is_pending(web: tuple[Post, Get, str]) -> None:
    _, get, prefix = web
    assert get(prefix + "no-such-task") == {"task_id": "no-such-task", "state": "PENDING"}


def test_the_examples_publish_through_their_own_app(web: tuple[Post, Get, str]) -> None:
    from agentjobs import complete

    own = complete.app
    assert own is not app and own is hosts.HOSTS[-1]
    assert own.conf.task_serializer == "json" and own.conf.task_acks_late is True
    assert own.main in ("flask_example", "jobsite"), own.main


# -- the Flask example's agent session --------------------------------------------------


@pytest.fixture
def flask_example(project_env: None) -> Iterator[Any]:
    before = list(hosts.HOSTS)
    module = load_flask_example()
    yield module
    for installed in [h for h in hosts.HOSTS if h not in before]:
        hosts.remove(installed)
    (hosts.HOSTS[-1] if hosts.HOSTS else app).set_current()


def test_a_session_started_from_the_flask_example_is_read_back(
    flask_example: Any, fresh_sim: Any, worker: Any
) -> None:
    client = flask_example.app.test_client()
    r = client.post("/sessions", json={"input": "Say hi [[sim:output_tokens=6]]"})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert r.headers["Location"] == body["status_url"] == f"/sessions/{body['session_id']}"
    done = wait_for(
        lambda: (s := client.get(body["status_url"]).get_json())["status"] == "completed" and s,
        timeout=30,
        what="the session to complete",
    )
    assert done["session_id"] == body["session_id"] and done["agent"] == "flask_example"
    assert done["steps"] == 1 and len(done["output"].split()) == 6
    assert fresh_sim.stats()["messages"] == 1
    missing = client.get("/sessions/no-such-session")
    assert missing.status_code == 404 and "error" in missing.get_json()

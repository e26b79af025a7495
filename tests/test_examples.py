"""The Flask and Django examples, end to end: test client -> queue -> real worker -> simulator."""

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
from agentjobs.contrib.testing import wait_for

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUEUES = ("claude.haiku", "claude.sonnet", "claude.opus")

#: post(json_body_or_raw_text) -> (status, json, location); get(url) -> json
Post = Callable[[Any], tuple[int, dict[str, Any], str | None]]
Get = Callable[[str], dict[str, Any]]


@pytest.fixture(autouse=True)
def _clean_state_store(state_redis: redis.Redis) -> None:
    """Each test starts with an empty state store: no limiter pause, budget or cache left
    by an earlier test in the session."""


def flask_client() -> tuple[Post, Get, str]:
    spec = importlib.util.spec_from_file_location("flask_example", EXAMPLES / "flask_app/app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    client = module.create_app().test_client()

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
def django_setup() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLES / "django_app"))
    os.environ["DJANGO_SETTINGS_MODULE"] = "jobsite.settings"
    import django

    django.setup()
    import jobsite  # noqa: F401 - what Django does at startup: loads jobsite/celery.py

    yield
    # jobsite/celery.py pointed this process's app at Django's settings: point it back.
    app.config_from_object("agentjobs.worker.config", force=True)
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
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
def web(request: pytest.FixtureRequest) -> tuple[Post, Get, str]:
    if request.param == "django":
        request.getfixturevalue("django_setup")
        return django_client()
    return flask_client()


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

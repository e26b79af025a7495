"""``agentjobs.install(app)`` on apps made in the test: what it sets, what it refuses, and
where ``complete`` publishes. Each app is removed from the hosts after its test, so
``complete`` publishes through agentjobs' own app again.

A project's worker and web process running for real: tests/test_user_app.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery
from kombu import Queue

import agentjobs
from agentjobs import ConfigurationError, complete
from agentjobs.contrib.pytest_plugin import PrivateRedis
from agentjobs.settings import get_settings
from agentjobs.worker import hosts
from agentjobs.worker.app import app as own_app
from agentjobs.worker.config import REQUIRED, ROUTER


@pytest.fixture
def project() -> Iterator[Callable[..., Celery]]:
    """make(**conf) -> a new Celery app with that configuration (not yet installed)."""
    made: list[Celery] = []

    def make(**conf: object) -> Celery:
        app = Celery(f"project{len(made)}", set_as_current=False)
        app.config_from_object(dict(conf))
        made.append(app)
        return app

    yield make
    for app in made:
        hosts.remove(app)
    own_app.set_current()


def test_install_defines_agentjobs_tasks_and_complete_publishes_through_the_app(
    project: Callable[..., Celery],
) -> None:
    app = agentjobs.install(project(broker_url="redis://127.0.0.1:1/0"))
    assert {"agentjobs.complete", "agentjobs.agent_step", "agentjobs.tool_call"} <= set(app.tasks)
    assert complete.app is app and complete.name == "agentjobs.complete"
    assert app.tasks["agentjobs.complete"] is not own_app.tasks["agentjobs.complete"]
    assert agentjobs.install(app) is app and hosts.HOSTS.count(app) == 1  # again: nothing
    hosts.remove(app)
    assert complete.app is own_app


def test_the_required_settings_are_set_and_the_projects_routers_follow_ours(
    project: Callable[..., Celery],
) -> None:
    theirs = {"proj.*": {"queue": "proj"}}
    app = agentjobs.install(project(task_routes=theirs, worker_prefetch_multiplier=4))
    conf = app.conf
    for name, value in REQUIRED.items():
        if name != "task_routes":
            assert conf[name] == value, name
    assert list(conf.task_routes) == [ROUTER, theirs]
    assert conf.worker_prefetch_multiplier == 4  # chosen by the project: kept
    assert conf.worker_soft_shutdown_timeout == get_settings().soft_shutdown_s
    assert conf.result_backend == get_settings().backend_url  # it had none
    options = conf.broker_transport_options
    assert options["visibility_timeout"] == get_settings().visibility_timeout_s


def test_a_default_left_by_the_project_becomes_agentjobs_value(
    project: Callable[..., Celery],
) -> None:
    conf = agentjobs.install(project(result_backend="redis://127.0.0.1:1/4")).conf
    assert conf.worker_prefetch_multiplier == 1
    assert conf.result_backend == "redis://127.0.0.1:1/4"  # the project's own


def test_a_conflict_is_refused_in_one_line_at_every_load(
    project: Callable[..., Celery],
) -> None:
    app = agentjobs.install(project(task_serializer="pickle", task_acks_late=False))
    for _ in range(2):  # and again: never half-configured
        with pytest.raises(ConfigurationError) as err:
            app.conf.get("task_serializer")
        message = str(err.value)
        assert "\n" not in message
        assert "task_serializer='pickle'" in message and "task_acks_late=False" in message


def test_a_conflict_in_a_configuration_loaded_before_install_is_refused_by_install(
    project: Callable[..., Celery],
) -> None:
    app = project(accept_content=["json", "pickle"])
    assert app.conf.accept_content == ["json", "pickle"]  # loaded now
    with pytest.raises(ConfigurationError, match="accept_content"):
        agentjobs.install(app)


def test_a_configuration_loaded_again_after_install_is_checked_again(
    project: Callable[..., Celery],
) -> None:
    app = agentjobs.install(project())
    assert app.conf.task_serializer == "json"
    with pytest.raises(ConfigurationError, match="task_serializer='pickle'"):
        app.config_from_object({"task_serializer": "pickle"}, force=True)  # loads it again
    with pytest.raises(ConfigurationError, match="task_serializer='pickle'"):
        app.conf.get("task_serializer")


def test_a_setting_changed_after_the_load_is_refused_before_complete_publishes(
    project: Callable[..., Celery], agentjobs_redis: PrivateRedis
) -> None:
    app = agentjobs.install(project(broker_url=f"{agentjobs_redis.url}/5"))
    assert app.conf.task_serializer == "json"  # loaded (and checked) now
    app.conf.task_serializer = "pickle"  # no load follows: only the finalize sees it
    for _ in range(2):  # and again: the app is not left finalized half-checked
        with pytest.raises(ConfigurationError) as err:
            complete.delay(prompt="hi", model="haiku")
        assert "\n" not in str(err.value) and "task_serializer='pickle'" in str(err.value)
    assert not app.finalized
    with agentjobs_redis.client(5) as broker:
        assert broker.llen("claude.haiku") == 0  # nothing was published in pickle


def test_a_short_redis_visibility_timeout_is_refused_but_not_on_rabbitmq(
    project: Callable[..., Celery],
) -> None:
    short = {"visibility_timeout": 30, "priority_steps": [0, 5]}
    redis_app = agentjobs.install(
        project(broker_url="redis://127.0.0.1:1/0", broker_transport_options=short)
    )
    with pytest.raises(ConfigurationError, match="AGENTJOBS_VISIBILITY_TIMEOUT_S"):
        redis_app.conf.get("broker_url")
    amqp = agentjobs.install(
        project(broker_url="amqp://guest@127.0.0.1:1//", broker_transport_options=short)
    )
    options = amqp.conf.broker_transport_options
    assert options["visibility_timeout"] == 30 and options["priority_steps"] == [0, 5]
    assert options["unacked_restore_throttle"] == 1  # agentjobs' where it had none


@pytest.mark.parametrize(
    "broker_url",
    [
        "sentinel://127.0.0.1:1/0",
        ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"],
        "redis://127.0.0.1:1/0;redis://127.0.0.1:2/0",
    ],
    ids=["sentinel", "failover-list", "failover-string"],
)
def test_a_short_visibility_timeout_is_refused_on_every_form_of_a_redis_broker(
    project: Callable[..., Celery], broker_url: object
) -> None:
    app = agentjobs.install(
        project(broker_url=broker_url, broker_transport_options={"visibility_timeout": 30})
    )
    with pytest.raises(ConfigurationError, match="visibility_timeout=30"):
        app.conf.get("broker_url")


def test_a_project_that_lists_its_queues_gets_agentjobs_queues(
    project: Callable[..., Celery],
) -> None:
    app = agentjobs.install(project(task_queues=[Queue("proj.default")]))
    names = [q.name for q in app.conf.task_queues]
    assert names == [
        "proj.default", "claude.haiku", "claude.sonnet", "claude.opus", "agentjobs.tools"
    ]  # fmt: skip
    assert all(q.routing_key == q.name for q in app.conf.task_queues[1:])


def test_the_project_app_becomes_current_again(project: Callable[..., Celery]) -> None:
    from celery import current_app

    app = project()
    own_app.set_current()  # what importing agentjobs does
    agentjobs.install(app)
    assert current_app._get_current_object() is app


def test_installing_agentjobs_own_app_changes_nothing() -> None:
    assert agentjobs.install(own_app) is own_app
    assert own_app not in hosts.HOSTS and complete.app is own_app

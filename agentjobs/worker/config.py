"""agentjobs' own Celery settings, read from the environment (AGENTJOBS_* variables).

``agentjobs.worker.app`` loads this module by its full name. Loaded as a bare ``celeryconfig``,
the first such module on ``sys.path`` would win, and a project's own ``celeryconfig.py``
in its root (or in the directory a worker starts in) would become agentjobs'
configuration. Every value here is chosen for Claude calls: slow (2-30 s), I/O bound,
expensive, and never to be run twice.

``REQUIRED`` holds the settings agentjobs' promises rest on; ``enforce`` applies them to
a Celery configuration and refuses one that sets them otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

from agentjobs.errors import ConfigurationError
from agentjobs.settings import get_settings

#: The Celery router that sends each task to its model family's queue.
ROUTER = "agentjobs.worker.tasks.route_task"

#: Settings no configuration may change. JSON only: a pickled message is refused by the
#: worker and never executed. Ack after the task ran and requeue when the worker process
#: dies, so nothing is lost (the duplicates this creates are made harmless by the
#: idempotency records). Routing by model: agentjobs' router comes first; a project may
#: add routers of its own after it.
REQUIRED: dict[str, Any] = {
    "task_serializer": "json",
    "result_serializer": "json",
    "accept_content": ["json"],
    "result_accept_content": ["json"],
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "task_routes": (ROUTER,),
}


def _routers(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | Mapping) or callable(value):
        return [value]
    return list(value)


def _is_router(value: Any) -> bool:
    name = value if isinstance(value, str) else getattr(value, "__qualname__", None)
    module = "" if isinstance(value, str) else getattr(value, "__module__", "") + "."
    return f"{module}{name}" == ROUTER


def _same(have: Any, want: Any) -> bool:
    if isinstance(want, list):  # a tuple of the same content is the same setting
        return isinstance(have, list | tuple) and list(have) == want
    return bool(have == want)


def _names(conf: Mapping[str, Any], name: str) -> list[str]:
    """A setting's names in ``conf``: plain, and under its namespace (``CELERY_...``)."""
    prefix = getattr(conf, "prefix", None)
    return [name, f"{prefix}{name}".upper()] if prefix else [name]


def _chosen(conf: Mapping[str, Any], name: str) -> bool:
    """Does the configuration give this setting (rather than leave Celery's default)?"""
    without_defaults = getattr(conf, "without_defaults", None)
    if without_defaults is None:  # a plain mapping: all it holds is chosen
        return name in conf
    chosen = without_defaults()
    return any(n in chosen for n in _names(conf, name))


def conflicts(conf: Mapping[str, Any]) -> list[str]:
    """The REQUIRED settings that ``conf`` (a Celery ``app.conf``, or a plain mapping)
    gives another value, each as ``name=value (agentjobs needs X)``; empty if none.

    A setting left at Celery's default does not conflict: ``enforce`` sets it. Routes
    never conflict: ``enforce`` puts agentjobs' router first.
    """
    found = []
    for name, want in REQUIRED.items():
        if name == "task_routes" or not _chosen(conf, name):
            continue
        have = conf.get(name)
        if not _same(have, want):
            found.append(f"{name}={have!r} (agentjobs needs {want!r})")
    return found


def enforce(conf: MutableMapping[str, Any]) -> None:
    """Make a loaded Celery configuration keep agentjobs' promises: refuse it with one
    line (ConfigurationError) when it sets a REQUIRED setting otherwise, else set what it
    left at Celery's defaults and put agentjobs' router before any of its own."""
    found = conflicts(conf)
    if found:
        raise ConfigurationError(
            "Celery settings that agentjobs cannot run with: " + "; ".join(found)
        )
    values = dict(REQUIRED)
    routers = _routers(conf.get("task_routes"))
    if routers and _is_router(routers[0]):
        values["task_routes"] = conf.get("task_routes")
    else:
        values["task_routes"] = (ROUTER, *(r for r in routers if not _is_router(r)))
    for name, value in values.items():
        # Under every name: Celery < 5.7 looks a namespaced name up in all layers
        # before the plain one, so a value set under the plain name alone would lose.
        for key in _names(conf, name):
            conf[key] = value


_s = get_settings()

broker_url = _s.broker_url
result_backend = _s.backend_url
#: Results (and their Redis keys) expire after AGENTJOBS_RESULT_TTL_S.
result_expires = _s.result_ttl_s
# Not result_extended: it would copy the task's kwargs (the whole prompt, up to 32 MB) into
# every state written to the backend (STARTED, SUCCESS) and keep it for the result TTL.
# Flower shows names and arguments from task events; ClaudeResult carries queue and worker.
result_extended = False

# task_serializer, accept_content, task_acks_late, task_routes, ...: REQUIRED above.
globals().update(REQUIRED)
# One message per thread: prefetched messages would sit unacked behind a slow call.
worker_prefetch_multiplier = 1

broker_connection_retry_on_startup = True
broker_transport_options = {
    # Redis broker only: an unacked message is redelivered after this long (the
    # default and its reasons: settings.py, docs/reliability.md).
    "visibility_timeout": _s.visibility_timeout_s,
    # kombu sweeps for expired unacked messages every interval x throttle seconds
    # (default 10 x 10 = 100 s on top of the timeout); sweep every tenth of the timeout
    # instead (one ZRANGE under a mutex), so a killed worker's tasks come back on time.
    # Both options are kombu >= 5.7's (older releases ignore them).
    "unacked_restore_interval": max(1, min(10, _s.visibility_timeout_s // 10)),
    "unacked_restore_throttle": 1,
    # The sweep's mutex lapses after this long if its holder dies: kombu's 300 s meant
    # that a worker killed -9 inside a sweep (one a second, with a short timeout) held
    # every killed worker's messages back for 5 minutes. A sweep holds it for a few
    # round trips, and each message is restored in a transaction, so two sweeps at once
    # restore it once.
    "unacked_mutex_expire": max(5, min(300, _s.visibility_timeout_s // 10)),
}
# Shutdown. SIGTERM (warm): running calls finish, reserved messages go back to the
# queue. SIGQUIT (cold): running calls get AGENTJOBS_SOFT_SHUTDOWN_S (Celery's soft
# shutdown), then are cancelled and, being unacked (late ack), return to the queue;
# also when idle, so that reserved retries (countdown) are handed back too.
worker_soft_shutdown_timeout = _s.soft_shutdown_s
worker_enable_soft_shutdown_on_idle = True
# Losing the broker connection does not cancel running calls: a paid answer is stored
# under its idempotency key, and the redelivered message returns it without a call.
worker_cancel_long_running_tasks_on_connection_loss = False
result_backend_transport_options = {"retry_policy": {"timeout": 5.0}}

task_default_queue = "claude.haiku"
task_create_missing_queues = True
task_track_started = True

# Events for Flower and `agentjobs stats` (task-sent carries the queue).
worker_send_task_events = True
task_send_sent_event = True

worker_hijack_root_logger = False

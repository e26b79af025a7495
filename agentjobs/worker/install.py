"""``agentjobs.install(app)``: agentjobs on a project's own Celery app.

A Django or Flask project that already has ``proj/celery.py`` keeps its app, broker and
result backend::

    app = Celery("proj")
    app.config_from_object("django.conf:settings", namespace="CELERY")
    agentjobs.install(app)

After it, ``complete.delay(...)`` publishes through ``app`` (its broker, its result
backend), and ``celery -A proj worker -Q claude.haiku -P threads`` serves Claude calls:
the worker runs the same preflight, signal handlers (metrics, submit ledger sweeper,
batch lane, session sweep) and threads pool as ``agentjobs worker haiku`` does. A worker
of the project's own queues only makes no Claude call: it needs no credentials and runs
none of agentjobs' background threads (``ops/served.py``).

What it sets on ``app``:

- the tasks (``agentjobs.complete`` and every other ``agentjobs.*`` task), defined on
  ``app`` as on agentjobs' own (``hosts.py``); agentjobs' router first in
  ``task_routes``, so each call goes to its model family's queue; the ``claude.*`` and
  ``agentjobs.*`` queues, which Celery creates when a worker or a publish names them
  (added to ``task_queues`` when the project lists its queues there);
- the required settings (``config.REQUIRED``: JSON only, late acks, requeue when a
  worker dies), enforced each time the configuration loads: one the project sets
  otherwise is refused with one line (ConfigurationError), never changed; checked
  again when the app is finalized (a worker's start, a caller's first ``complete``),
  for a setting changed after the load;
- ``HOST_DEFAULTS`` (one message per thread, the soft shutdown), agentjobs' Redis
  transport options (its visibility timeout) and a result backend, only where the
  project left Celery's default: a choice of the project's own is kept, except a Redis
  visibility timeout below ``AGENTJOBS_VISIBILITY_TIMEOUT_S``, which would redeliver
  live calls: refused.

The pool is the worker's choice: ``-P threads`` names agentjobs' resizable threads pool
in any process that imported agentjobs' app (as this module does).

agentjobs' state store (limiter, idempotency, dead letters) stays AGENTJOBS_REDIS_URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from celery import Celery
from celery._state import get_current_app
from kombu import Exchange, Queue

from agentjobs import catalog
from agentjobs.errors import ConfigurationError
from agentjobs.reliability import ledger
from agentjobs.settings import get_settings
from agentjobs.worker import config, hosts
from agentjobs.worker.app import SettingsRefused
from agentjobs.worker.app import app as own_app

PREFLIGHT = "agentjobs.worker.preflight:Preflight"
#: The tools queue of agent sessions (ARCHITECTURE.md, "Agent sessions").
TOOLS_QUEUE = "agentjobs.tools"

#: Settings agentjobs sets on a project's app where the project left Celery's default.
#: One message per thread: a prefetched message would wait unacked behind a slow call
#: (and, on Redis, count against the visibility timeout). The soft shutdown lets
#: running calls finish, and losing the broker does not cancel them (config.py).
HOST_DEFAULTS: dict[str, Any] = {
    "worker_prefetch_multiplier": config.worker_prefetch_multiplier,
    "worker_soft_shutdown_timeout": config.worker_soft_shutdown_timeout,
    "worker_enable_soft_shutdown_on_idle": config.worker_enable_soft_shutdown_on_idle,
    "worker_cancel_long_running_tasks_on_connection_loss": (
        config.worker_cancel_long_running_tasks_on_connection_loss
    ),
    "broker_connection_retry_on_startup": config.broker_connection_retry_on_startup,
}

_lock = threading.Lock()


def agentjobs_queues() -> list[str]:
    """Every queue agentjobs' tasks are routed to: one per model family, and the tools'."""
    return [*(catalog.queue_for(family) for family in catalog.FAMILIES), TOOLS_QUEUE]


def install(app: Celery) -> Celery:
    """Install agentjobs on ``app``, a project's own Celery app (see the module's
    docstring); returns ``app``. Safe to call again. agentjobs' own app needs no install.

    Raises ConfigurationError (one line) when ``app``'s configuration is already loaded
    and sets a required setting otherwise; else that check runs when it loads.
    """
    if app is own_app:
        return app
    with _lock:
        if app in hosts.HOSTS:
            return app
        _check_on_every_load(app)
        _check_at_finalize(app)
        app.steps["worker"].add(PREFLIGHT)
        app.on_after_finalize.connect(_define_tasks, weak=False)
        hosts.add(app)
        # Importing agentjobs made its own app Celery's current one: the project's is.
        if get_current_app() is own_app:
            app.set_current()
    return app


def _define_tasks(sender: Celery, **_: Any) -> None:
    # agentjobs' own app defines its tasks when it is finalized (and imports the task
    # modules it includes then); each one is defined on the hosts as it is (hosts.py).
    own_app.finalize(auto=True)


def _check_on_every_load(app: Celery) -> None:
    """Make every configuration load of ``app`` (at first use, and again after
    ``config_from_object``) keep agentjobs' settings, as ``AgentJobsCelery`` does for
    agentjobs' own app. Celery's on_after_configure signal would only log a refusal, and
    ``add_defaults`` runs once, so the app's own loading step is wrapped."""
    load: Callable[[], Any] = app._load_config

    def load_and_check() -> Any:
        try:
            conf = load()
            configure(conf)
        except ConfigurationError as exc:
            app._conf = None  # the next access loads (and refuses) again
            raise SettingsRefused(str(exc)) from None
        return conf

    app._load_config = load_and_check
    if app.configured:  # loaded already: check it now
        configure(app.conf)


def _check_at_finalize(app: Celery) -> None:
    """Check ``app``'s configuration again when it is finalized: a setting changed after
    the load (``app.conf.task_serializer = "pickle"`` once something had read the
    configuration) passes no load, and would have ``complete.delay`` publish pickle. A
    worker finalizes its app at start, after the project's modules are imported, and a
    caller at its first ``complete``; both are refused there, in one line."""
    finalize: Callable[..., Any] = app.finalize

    def check_and_finalize(auto: bool = False) -> Any:
        if not app.finalized:
            try:
                configure(app.conf)
            except ConfigurationError as exc:
                raise SettingsRefused(str(exc)) from None
        return finalize(auto)

    app.finalize = check_and_finalize


def configure(conf: MutableMapping[str, Any]) -> None:
    """Apply agentjobs' settings to a project's loaded Celery configuration, or raise
    ConfigurationError naming every conflict in one line."""
    found = config.conflicts(conf)
    found += _transport_conflicts(conf)
    if found:
        raise ConfigurationError(
            "Celery settings that agentjobs cannot run with: " + "; ".join(found)
        )
    config.enforce(conf)
    for name, value in HOST_DEFAULTS.items():
        if not config._chosen(conf, name):
            _set(conf, name, value)
    if not conf.get("result_backend"):  # callers read complete's result
        _set(conf, "result_backend", get_settings().backend_url)
    _set(conf, "broker_transport_options", _transport_options(conf))
    _add_queues(conf)


def _set(conf: MutableMapping[str, Any], name: str, value: Any) -> None:
    for key in config._names(conf, name):
        conf[key] = value


def _transport_options(conf: Mapping[str, Any]) -> dict[str, Any]:
    """The project's broker transport options, with agentjobs' where it set none."""
    theirs = dict(conf.get("broker_transport_options") or {})
    return {**config.broker_transport_options, **theirs}


def _transport_conflicts(conf: Mapping[str, Any]) -> list[str]:
    theirs = (conf.get("broker_transport_options") or {}).get("visibility_timeout")
    ours = get_settings().visibility_timeout_s
    # Celery's own property where there is one: it prefers CELERY_BROKER_URL.
    broker = getattr(conf, "broker_url", None) or conf.get("broker_url")
    # Every URL form of kombu's Redis transport (sentinel://, a failover list, ...):
    # each redelivers an unacked message after the visibility timeout.
    if theirs is None or not ledger.is_redis_broker(broker):
        return []
    if float(theirs) < ours:
        return [
            f"broker_transport_options visibility_timeout={theirs!r} (agentjobs needs at "
            f"least AGENTJOBS_VISIBILITY_TIMEOUT_S={ours}, or live calls are redelivered)"
        ]
    return []


def _add_queues(conf: MutableMapping[str, Any]) -> None:
    """A project that lists its queues (``task_queues``) gets agentjobs' added, declared
    as Celery declares a queue it creates on demand (exchange and routing key its name)."""
    queues = conf.get("task_queues")
    if not queues:
        return  # Celery creates each queue when named (task_create_missing_queues)
    if isinstance(queues, Mapping):  # {name: {"exchange": ..., "routing_key": ...}}
        wanted = {n: {"exchange": n, "routing_key": n} for n in agentjobs_queues()}
        _set(conf, "task_queues", {**wanted, **queues})
        return
    listed = list(queues)
    names = {getattr(q, "name", None) for q in listed}
    added = [Queue(n, Exchange(n), routing_key=n) for n in agentjobs_queues() if n not in names]
    if added:
        _set(conf, "task_queues", [*listed, *added])

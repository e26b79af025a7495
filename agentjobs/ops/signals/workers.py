"""The handlers of a worker's life: its registration as live, per queue, until it stops.

A worker registers at ``worker_init`` (and again at ``worker_ready``, with the queues
it really consumes), refreshes the registration every ``WORKER_HEARTBEAT_S`` from a
daemon thread, and unregisters at ``worker_shutdown``; a killed worker drops out when
its registration ages (``WORKER_TTL_S``). ``worker_ready`` also starts the submit
ledger's sweeper and the batch lane's batcher, on a worker that consumes one of
agentjobs' queues (``served.py``): a project's worker of its own queues runs neither.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from celery import signals as cs

from agentjobs.lanes import runner as batch_lane
from agentjobs.ops import metrics, served
from agentjobs.reliability import sweeper
from agentjobs.reliability.worker_thread import closing


class _Registration:
    """Keeps a worker registered for its queues until it stops (a daemon thread)."""

    def __init__(self, hostname: str, queues: list[str], worker: Any = None) -> None:
        self.hostname = hostname
        self.queues = queues
        self.worker = weakref.ref(worker) if worker is not None else None
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._run, name=f"agentjobs-metrics-{hostname}", daemon=True
        )

    def _run(self) -> None:
        while not self.stop.wait(metrics.WORKER_HEARTBEAT_S):
            if closing(self.worker):
                _unregister(self.hostname)
                return
            metrics.worker_seen(self.hostname, self.queues)


_registrations: dict[str, _Registration] = {}
_reg_lock = threading.Lock()


def _register(hostname: str, queues: list[str], worker: Any = None) -> None:
    metrics.worker_seen(hostname, queues)
    with _reg_lock:
        old = _registrations.get(hostname)
        if old is not None:
            if set(old.queues) == set(queues):
                return
            old.stop.set()
            metrics.worker_gone(hostname, [q for q in old.queues if q not in queues])
        reg = _registrations[hostname] = _Registration(hostname, queues, worker)
    reg.thread.start()


def _unregister(hostname: str) -> None:
    with _reg_lock:
        reg = _registrations.pop(hostname, None)
    if reg is not None:
        reg.stop.set()
        metrics.worker_gone(hostname, reg.queues)


def _consumed_queues(app: Any) -> list[str]:
    selected = app.amqp.queues.consume_from or app.amqp.queues
    return sorted(str(name) for name in selected)


@cs.worker_init.connect
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    if hostname:
        _register(str(hostname), _consumed_queues(sender.app), sender)


@cs.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    hostname = getattr(sender, "hostname", None)
    task_consumer = getattr(sender, "task_consumer", None)
    if hostname and task_consumer is not None:
        queues = sorted(q.name for q in task_consumer.queues)
        _register(str(hostname), queues, getattr(sender, "controller", None))
    controller = getattr(sender, "controller", None)
    if served.serves_agentjobs(controller):  # not a project's worker of its own queues
        sweeper.start(controller)  # the submit ledger's sweeper
        batch_lane.start(controller)  # the batch lane's batcher


@cs.worker_shutdown.connect
def _on_worker_shutdown(sender: Any = None, **_: Any) -> None:
    _unregister(str(getattr(sender, "hostname", "")))

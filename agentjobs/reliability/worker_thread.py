"""A daemon thread that works at an interval for as long as its Celery worker runs.

The submit ledger's sweeper, the agent sessions' sweep and prune and the batch lane's
runner are each one: started from a ``worker_ready`` handler, at most one of a kind per worker,
stopping when the worker closes (or its ``stop`` event is set), a failed round logged
and tried again at the next.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

#: How often a waiting thread looks whether its worker is closing, seconds.
_LOOK_S = 1.0


def closing(worker: weakref.ref[Any] | None) -> bool:
    """Whether the worker behind ``worker`` is gone or closing (an embedded worker can
    end without ``worker_shutdown``: its state tells). No worker: never."""
    from celery.bootsteps import CLOSE, TERMINATE

    if worker is None:
        return False
    w = worker()
    blueprint = getattr(w, "blueprint", None)
    return w is None or (blueprint is not None and blueprint.state in (CLOSE, TERMINATE))


class WorkerThread:
    """Subclasses name the thread, say how long to wait between rounds and do a round."""

    #: The thread's name, and what a failed round's log line calls it.
    name = "agentjobs-worker-thread"

    def __init__(self, worker: Any, app: Any) -> None:
        self.worker = weakref.ref(worker) if worker is not None else None
        self.app = app
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def interval(self) -> float:
        """Seconds before the next round (read each time: tests change settings)."""
        raise NotImplementedError

    def tick(self) -> None:
        """One round; an exception is logged and the next round comes as usual."""
        raise NotImplementedError

    def finish(self) -> None:
        """After the last round (give back a lock, say)."""

    def stopped(self) -> bool:
        """Whether the worker is gone or closing."""
        return closing(self.worker)

    def _wait(self, seconds: float) -> bool:
        """Wait ``seconds``; True as soon as the thread is told to stop or its worker is
        closing (looked at every second: a round an hour apart must not keep the thread
        of an embedded worker, a test's say, alive for the hour after it stopped)."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if self.stop.wait(min(max(left, 0.0), _LOOK_S)) or self.stopped():
                return True
            if left <= _LOOK_S:
                return False

    def _run(self) -> None:
        while not self._wait(self.interval()):
            try:
                self.tick()
            except Exception as exc:  # a broker, store or API outage: the next round
                log.warning("%s: a round failed: %r", self.name, exc)
        try:
            self.finish()
        except Exception:
            log.debug("%s: finish failed", self.name, exc_info=True)


T = TypeVar("T", bound=WorkerThread)


class PerWorker(Generic[T]):
    """The live threads of one kind, at most one per worker."""

    def __init__(self) -> None:
        self._threads: dict[int, T] = {}
        self._lock = threading.Lock()

    def get(self, worker_id: int) -> T | None:
        """The thread of the worker whose ``id()`` this is, if any."""
        return self._threads.get(worker_id)

    def start(self, worker: Any, make: Callable[[], T]) -> T:
        """The worker's thread of this kind: the running one, or ``make()``'s, started."""
        with self._lock:
            for k in [k for k, t in self._threads.items() if not t.thread.is_alive()]:
                del self._threads[k]
            running = self._threads.get(id(worker))
            if running is not None:
                return running
            made = self._threads[id(worker)] = make()
            made.thread.start()
        return made

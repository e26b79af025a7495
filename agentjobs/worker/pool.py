"""The worker pool: Celery's threads pool, resizable, so ``--autoscale`` works.

Celery's thread pool has a fixed size and no ``grow``/``shrink``: a worker started with
``-P threads --autoscale 64,8`` dies at its first scale-up ("'TaskPool' object has no
attribute 'grow'"). Claude calls are I/O bound, so threads are the pool to scale.

``app.py`` registers this class under the name ``threads``; it behaves exactly like
Celery's until the autoscaler resizes it. ``limit`` bounds the tasks running at once:
``grow`` raises it (the executor starts threads lazily, up to the limit), ``shrink``
lowers it (threads over the limit finish their task, then park). A task waiting for a
slot has been received but not started: its message stays unacked, as when prefetched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery.concurrency.base import apply_target
from celery.concurrency.thread import ApplyResult
from celery.concurrency.thread import TaskPool as CeleryThreadPool


class ThreadPool(CeleryThreadPool):
    """Celery's threads pool with ``grow`` and ``shrink`` for the autoscaler."""

    limit: int

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.Condition()
        self._running = 0

    def on_apply(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        callback: Callable[..., Any] | None = None,
        accept_callback: Callable[..., Any] | None = None,
        **_: Any,
    ) -> ApplyResult:
        future = self.executor.submit(self._run, target, args, kwargs, callback, accept_callback)
        return ApplyResult(future)

    def _run(self, *call: Any) -> Any:
        with self._slots:
            self._slots.wait_for(lambda: self._running < self.limit)
            self._running += 1
        try:
            return apply_target(*call)
        finally:
            with self._slots:
                self._running -= 1
                self._slots.notify()

    def grow(self, n: int = 1) -> None:
        with self._slots:
            self.limit += n
            # ThreadPoolExecutor starts threads only on submit, up to _max_workers: raise
            # the cap and start the threads now, for tasks already queued in it.
            self.executor._max_workers = max(self.executor._max_workers, self.limit)
            for _ in range(n):
                self.executor._adjust_thread_count()
            self._slots.notify_all()

    def shrink(self, n: int = 1) -> None:
        with self._slots:
            self.limit = max(1, self.limit - n)

    @property
    def running(self) -> int:
        """Tasks running now (not counting those waiting for a slot)."""
        return self._running

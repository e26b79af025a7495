"""The batcher's thread in each worker, and the lock that lets one run at a time.

Every worker starts the thread (``start``, from the ``worker_ready`` handler, as the
submit ledger's sweeper); each tick it takes or renews ``{p}:batch:lock`` and runs
``batcher.tick`` only while it holds it. The lock outlives a tick by far and a create
call's timeout is half the lock's lifetime, so a worker whose lock lapsed (it was
killed, or stalled) cannot still be in a create call when another worker takes over.
"""

from __future__ import annotations

import logging
import threading
import uuid
import weakref
from typing import Any

from agentjobs import store
from agentjobs.lanes import batcher, records
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

_HOLD = store.lua("agentjobs.lanes", "lock_hold.lua")


def lock_ms() -> int:
    s = get_settings()
    return int(max(s.batch_lock_s, s.batch_tick_s * 3) * 1000)


def hold(token: str) -> bool:
    """Take or renew the lane's lock for ``token``; True while it is ours."""
    r = state_redis()
    return bool(store.script(r, _HOLD)(keys=[records.lock_key()], args=[token, lock_ms()]))


def release(token: str) -> None:
    store.unlock(state_redis(), records.lock_key(), token)


class Runner:
    """A daemon thread ticking every ``AGENTJOBS_BATCH_TICK_S`` while its worker runs."""

    def __init__(self, app: Any, hostname: str, worker: Any = None) -> None:
        self.app = app
        self.hostname = hostname
        self.worker = weakref.ref(worker) if worker is not None else None
        self.token = f"{hostname}|{uuid.uuid4().hex[:12]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="agentjobs-batcher", daemon=True)

    def _stopped(self) -> bool:
        from celery.bootsteps import CLOSE, TERMINATE

        if self.worker is None:
            return False
        w = self.worker()
        blueprint = getattr(w, "blueprint", None)
        return w is None or (blueprint is not None and blueprint.state in (CLOSE, TERMINATE))

    def once(self) -> batcher.Tick | None:
        """One tick if this runner holds the lock (None if another worker does)."""
        if not hold(self.token):
            return None
        return batcher.tick(
            self.app,
            owner=self.token,
            hostname=self.hostname,
            create_timeout_s=lock_ms() / 2000.0,
            keep=lambda: hold(self.token),
        )

    def _run(self) -> None:
        while not self.stop.wait(get_settings().batch_tick_s) and not self._stopped():
            try:
                self.once()
            except Exception as exc:  # the API or the state store down: next tick
                log.warning("batch lane tick failed: %r", exc)
        try:
            release(self.token)
        except Exception:  # the lock lapses by itself
            log.debug("batch lane lock not released", exc_info=True)


_runners: dict[int, Runner] = {}
_lock = threading.Lock()


def start(worker: Any) -> Runner | None:
    """Start the batcher thread of a worker that is ready; nothing when the tick is 0."""
    app = getattr(worker, "app", None)
    if app is None or get_settings().batch_tick_s <= 0:
        return None
    with _lock:
        for k in [k for k, r in _runners.items() if not r.thread.is_alive()]:
            del _runners[k]
        if id(worker) in _runners:
            return _runners[id(worker)]
        runner = _runners[id(worker)] = Runner(app, str(getattr(worker, "hostname", "")), worker)
    runner.thread.start()
    return runner

"""The batcher's thread in each worker, and the lock that lets one run at a time.

Every worker starts the thread (``start``, from the ``worker_ready`` handler, as the
submit ledger's sweeper); each tick it takes or renews ``{p}:batch:lock`` and runs
``batcher.tick`` only while it holds it. The lock outlives a tick by far and a create
call's timeout is half the lock's lifetime, so a worker whose lock lapsed (it was
killed, or stalled) cannot still be in a create call when another worker takes over.
"""

from __future__ import annotations

import uuid
from typing import Any

from agentjobs import store
from agentjobs.lanes import batcher, records
from agentjobs.reliability.worker_thread import PerWorker, WorkerThread
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

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


class Runner(WorkerThread):
    """Ticks every ``AGENTJOBS_BATCH_TICK_S`` while its worker runs."""

    name = "agentjobs-batcher"

    def __init__(self, app: Any, hostname: str, worker: Any = None) -> None:
        super().__init__(worker, app)
        self.hostname = hostname
        self.token = f"{hostname}|{uuid.uuid4().hex[:12]}"

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

    def interval(self) -> float:
        return get_settings().batch_tick_s

    def tick(self) -> None:
        self.once()

    def finish(self) -> None:
        release(self.token)  # else the lock lapses by itself


_runners: PerWorker[Runner] = PerWorker()


def start(worker: Any) -> Runner | None:
    """Start the batcher thread of a worker that is ready; nothing when the tick is 0."""
    app = getattr(worker, "app", None)
    if app is None or get_settings().batch_tick_s <= 0:
        return None
    return _runners.start(worker, lambda: Runner(app, str(getattr(worker, "hostname", "")), worker))

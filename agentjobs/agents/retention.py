"""The session retention, run by workers: ``prune`` every ``INTERVAL_S``.

The rule (``store.py``) is the same for both stores: a session that has ended is
removed ``AGENTJOBS_SESSION_RETENTION_S`` after its last write; one running or waiting
for approval never is. Redis keeps it with TTLs and needs the prune only to drop the
ids expired records leave in its indexes; PostgreSQL has no TTL, so the prune is what
deletes (records and their checkpoint history). It runs in every ready worker of
agentjobs' queues, whatever the broker, as Temporal's history service deletes closed
workflows past a namespace's retention: nothing to schedule (Celery's
``celery.backend_cleanup`` for its database backend needs beat running, which is
easily forgotten). Several workers pruning at once share the work (PostgreSQL's batches
skip the rows another holds), so no lock is taken. ``agentjobs sessions prune`` runs
one round by hand (``--dry-run`` counts).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from agentjobs.agents.store import Pruned
from agentjobs.agents.stores import session_store
from agentjobs.reliability.worker_thread import PerWorker, WorkerThread

log = logging.getLogger(__name__)

#: Seconds between two prunes of a worker (read at each round: tests shorten it). An
#: hour: retention is counted in days, and a round deletes at most ``LIMIT`` sessions.
INTERVAL_S = 3600.0
#: The first round comes this soon after the worker is ready: a fleet whose workers are
#: replaced more often than every INTERVAL_S still prunes.
FIRST_S = 60.0
#: Sessions deleted per round, at most (the rest at the next round).
LIMIT = 10_000


#: The clock a round compares records' last writes with (tests move it forward).
clock: Callable[[], float] = time.time


def prune(*, dry_run: bool = False) -> Pruned:
    """One round over this process's session store."""
    done = session_store().prune(now=clock(), dry_run=dry_run, limit=LIMIT)
    if done.sessions or done.checkpoints:
        log.info(
            "session retention: %s %d ended session(s) and %d checkpoint row(s)",
            "would remove" if dry_run else "removed",
            done.sessions,
            done.checkpoints,
        )
    return done


class _Prune(WorkerThread):
    name = "agentjobs-session-prune"
    rounds = 0

    def interval(self) -> float:
        return FIRST_S if self.rounds == 0 else INTERVAL_S

    def tick(self) -> None:
        self.rounds += 1
        prune()


_prunes: PerWorker[_Prune] = PerWorker()


def start(worker: Any) -> None:
    """Start the prune thread of a worker that is ready (``tasks.py``'s ``worker_ready``
    handler); nothing when tasks are eager (no worker to speak of)."""
    app = getattr(worker, "app", None)
    if app is None or app.conf.task_always_eager:
        return
    _prunes.start(worker, lambda: _Prune(worker, app))

"""The session sweep: running sessions that stopped progressing are resumed.

The submit ledger (``reliability/ledger.py``) brings back ``complete`` tasks the Redis
broker lost between its pop and its unacked record; a session's step or tool call
lost there (or in a purged queue) would leave the session ``running`` for ever. Each
worker runs this sweep every ``AGENTJOBS_LEDGER_SWEEP_INTERVAL_S`` (one sweep per
interval across all workers: ``{p}:agents:sweep:lock`` is taken for the interval and
not released). A session is **stalled**, and resumed (``control.resume``), when it is
``running`` (not ``waiting_approval``: that waits for a person), its record has not
changed for ``AGENTJOBS_LEDGER_GRACE_S``, and, at two looks ``confirm_s`` apart, its
work is found nowhere:

- not in flight: no live idempotency lease on the step in flight (``{session}:{n}``,
  a model call streaming) or on a tool call of its turn (a tool running);
- not held by a worker: no message in the broker's ``unacked`` hash named for the
  session (a countdown retry, a limiter deferral or a prefetched message, all waiting
  for their ETA in a worker; a worker killed mid-task, to be redelivered);
- not queued: every message of the session was sent after its record's
  ``updated_at`` (the loop writes before it sends, and ``resume`` notes itself in the
  record first), and the Redis queue is FIFO, so when the oldest message still in
  each queue it waits on was sent later than that (``sweeper.ORDER_SLACK_S`` of
  slack), its message has left the queue.

A resume that is not needed is harmless all the same: a step's claim on
``{session}:{n}`` lets one copy call the model while the others wait for its answer
or take the stored one, and a tool call's claim does the same for the tool.
RabbitMQ brokers are skipped (a delivery is unacked at once: nothing is lost there).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentjobs import catalog
from agentjobs.agents import control, record
from agentjobs.agents.record import RESOLVED
from agentjobs.agents.store import Record, SessionNotFound
from agentjobs.agents.stores import session_store
from agentjobs.errors import SessionStateError
from agentjobs.keys import key as rkey
from agentjobs.reliability import idempotency, ledger, sweeper
from agentjobs.reliability.worker_thread import PerWorker, WorkerThread
from agentjobs.settings import get_settings

log = logging.getLogger(__name__)

#: Running sessions looked at per sweep, at most (oldest changes first).
LIMIT = 10_000


def lock_key() -> str:
    return rkey("agents", "sweep", "lock")


@dataclass
class Report:
    """What one sweep found; ``resumed`` were resumed unless it was a dry run."""

    checked: int = 0  # running sessions unchanged for the grace period
    leased: int = 0
    unacked: int = 0
    queued: int = 0
    resumed: list[str] = field(default_factory=list)
    skipped: str | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _waits_on(rec: Record) -> tuple[list[str], list[str]]:
    """The idempotency keys and queues of the work the record waits for."""
    n = int(rec.get("turn") or 0)
    keys: list[str] = []
    queues: set[str] = set()
    entry = record.step_entry(rec, n)
    if entry is not None and entry["status"] == "calling":
        keys.append(f"{rec['session_id']}:{n}")
        queues.add(catalog.resolve(str(entry["model"])).queue)
    for c in record.calls_of(rec, n):
        if c["status"] not in RESOLVED and c["status"] != "waiting_approval" and c["queue"]:
            keys.append(str(c["idempotency_key"]))
            queues.add(str(c["queue"]))
    due = rec.get("next_step")
    if due is not None and record.step_entry(rec, int(due)) is None:
        queues.add(catalog.resolve(_model_of(rec)).queue)
    return keys, sorted(queues)


def _model_of(rec: Record) -> str:
    from agentjobs.agents.turn import model_of

    return model_of(rec)


def _held_sessions(broker: Any) -> set[str]:
    """Session ids named by the messages a worker holds (their shadow names:
    ``agent:{agent}:{session}:{n}``, ``tool:{name}:{session}:{n}``)."""
    import json

    found: set[str] = set()
    for _tag, raw in broker.client.hscan_iter(broker.ch.unacked_key, count=500):
        try:
            shadow = str(json.loads(raw)[0]["headers"].get("shadow") or "")
        except (ValueError, KeyError, TypeError, IndexError):
            continue
        parts = shadow.split(":")
        if len(parts) >= 4 and parts[0] in ("agent", "tool"):
            found.add(parts[-2])
    return found


def _stalled(
    recs: list[Record], broker: Any, report: Report | None, held: set[str]
) -> list[Record]:
    """Of ``recs``, those whose work is found nowhere (the module doc)."""
    state = ledger.client()
    rest: list[Record] = []
    heads: dict[str, float | None] = {}
    for rec in recs:
        keys, queues = _waits_on(rec)
        if keys and any(state.exists(idempotency.lease_key(k)) for k in keys):
            if report:
                report.leased += 1
            continue
        if rec["session_id"] in held:
            if report:
                report.unacked += 1
            continue
        for q in queues:
            if q not in heads:
                heads[q] = broker.oldest_sent(q)
        since = float(rec["updated_at"])
        if any(
            heads[q] is None or since >= float(heads[q] or 0) - sweeper.ORDER_SLACK_S
            for q in queues
        ):
            if report:
                report.queued += 1
            continue
        rest.append(rec)
    return rest


def sweep(
    app: Any,
    *,
    grace_s: float | None = None,
    every_s: float | None = None,
    confirm_s: float = sweeper.CONFIRM_S,
    dry_run: bool = False,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> Report:
    """One sweep: resume the stalled sessions (none if ``dry_run``). Skipped when a
    sweep ran in the last ``every_s`` (default the sweep interval) on any worker."""
    s = get_settings()
    grace = s.ledger_grace_s if grace_s is None else grace_s
    every = s.ledger_sweep_interval_s if every_s is None else every_s
    report = Report(dry_run=dry_run)
    if not ledger.is_redis_broker(app.conf.broker_url):
        report.skipped = "the broker is not Redis (no lost-message window)"
        return report
    if not dry_run and every > 0:
        token = uuid.uuid4().hex
        if not ledger.client().set(lock_key(), token, nx=True, px=max(1, int(every * 1000))):
            report.skipped = "a sweep ran in this interval"
            return report
    store = session_store()
    old = now() - grace
    recs = [
        r
        for r in store.list(status="running", limit=LIMIT)
        if float(r.get("updated_at") or 0.0) < old
    ]
    full = [rec for r in recs if (rec := store.get(r["session_id"])) is not None]
    full = [r for r in full if r["status"] == "running" and float(r["updated_at"]) < old]
    report.checked = len(full)
    if not full:
        return report
    with sweeper._broker(app) as broker:
        if broker is None:
            report.skipped = "the broker is not Redis (no lost-message window)"
            return report
        suspects = _stalled(full, broker, report, _held_sessions(broker))
        if suspects and confirm_s > 0:
            sleep(confirm_s)
        if suspects:  # a second look: unchanged records, still found nowhere
            versions = {r["session_id"]: r["version"] for r in suspects}
            again = [r for sid in versions if (r := store.get(sid)) is not None]
            again = [r for r in again if r.get("version") == versions[r["session_id"]]]
            suspects = _stalled(again, broker, None, _held_sessions(broker))
    for rec in suspects:
        sid = rec["session_id"]
        if not dry_run:
            try:
                control.resume(sid, by="sweep")
            except (SessionNotFound, SessionStateError):
                continue  # ended or expired since the look
            log.warning(
                "session %s made no progress for %.0fs and its work was found nowhere: resumed",
                sid,
                now() - float(rec["updated_at"]),
            )
        report.resumed.append(sid)
    return report


# -- the in-worker sweep -----------------------------------------------------------------


class _Sweep(WorkerThread):
    """Sweeps every ``AGENTJOBS_LEDGER_SWEEP_INTERVAL_S`` while its worker runs."""

    name = "agentjobs-session-sweep"

    def interval(self) -> float:
        return get_settings().ledger_sweep_interval_s

    def tick(self) -> None:
        sweep(self.app)


_sweeps: PerWorker[_Sweep] = PerWorker()


def start(worker: Any) -> None:
    """Start the sweep thread of a worker that is ready (``tasks.py``'s ``worker_ready``
    handler); nothing when the interval is 0, the broker is not Redis, or tasks are
    eager."""
    app = getattr(worker, "app", None)
    if app is None or get_settings().ledger_sweep_interval_s <= 0:
        return
    if not ledger.is_redis_broker(app.conf.broker_url) or app.conf.task_always_eager:
        return
    _sweeps.start(worker, lambda: _Sweep(worker, app))

"""The ledger sweeper: find tasks the Redis broker lost, and send them again.

A ledger entry (ledger.py) older than ``AGENTJOBS_LEDGER_GRACE_S`` is **lost** when its
task is, at two looks ``confirm_s`` apart, all of:

- not queued: the Redis transport's queue is FIFO (``LPUSH``, ``BRPOP`` from the
  right), so everything still queued was pushed after the oldest message in the list
  (``LINDEX q -1``, its ``agentjobs_sent_at`` header, stamped at publish by
  signals.py). An entry recorded (after its publish) more than ``ORDER_SLACK_S`` before
  that header left the queue. Messages that kombu restores go to the right end with
  their old time, which only makes the test more careful; a queue whose oldest message
  has no header (a foreign publisher) is left alone until that message is consumed;
- not leased: no live idempotency lease on its key (no call running);
- not in the broker's ``unacked`` hash (a worker holds it: running, or a countdown
  retry waiting for its ETA, or redelivered by the visibility timeout later);
- still in the ledger with the same time (a retry re-records it; an outcome removes it).

A lost task is published again with the same task id, kwargs and queue. That is safe
whatever the reason it looked lost: its idempotency key makes any copy return the
stored outcome, or wait on a live lease, so no second Claude call follows from it (an
entry recorded after a fast task had already finished is also "found nowhere": the
re-sent copy returns the stored result and removes the entry).

One sweeper runs at a time across hosts (``{p}:ledger:lock``). Workers run one each
(``start`` from the ``worker_ready`` handler, every ``AGENTJOBS_LEDGER_SWEEP_INTERVAL_S``);
``agentjobs recover`` runs one by hand. RabbitMQ brokers are skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentjobs import store
from agentjobs.reliability import ledger
from agentjobs.reliability.worker_thread import PerWorker, WorkerThread
from agentjobs.settings import get_settings

log = logging.getLogger(__name__)

#: Publish-order tolerance, seconds: two producers may stamp and push in different
#: orders, and hosts' clocks differ a little. Too small costs a needless (harmless)
#: re-send; too large delays finding a lost task until the queue moved that far.
ORDER_SLACK_S = 5.0
#: Seconds between the two looks at a lost-looking entry (a message between BRPOP and
#: its unacked record, or just restored, shows up again).
CONFIRM_S = 2.0
#: The header signals.py stamps on every agentjobs message at publish (epoch seconds).
SENT_AT = "agentjobs_sent_at"
TASK_NAME = "agentjobs.complete"


@dataclass
class Report:
    """What one sweep found. ``lost`` were re-sent unless it was a dry run."""

    checked: int = 0  # entries older than the grace period
    queued: int = 0
    leased: int = 0
    unacked: int = 0
    lost: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    expired: int = 0  # older than the result TTL: dropped (nothing could be judged)
    in_ledger: int = 0
    skipped: str | None = None
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Broker:
    """The Redis transport's view: queue heads and unacked task ids (via kombu's channel,
    so its DB, key prefix and priority lists are the worker's)."""

    def __init__(self, channel: Any) -> None:
        self.ch = channel
        self.client = channel.client

    def oldest_sent(self, queue: str) -> float | None:
        """The oldest publish time still in ``queue`` (inf if empty; None if unknown)."""
        oldest = float("inf")
        for pri in self.ch.priority_steps:
            raw = self.client.lindex(self.ch._q_for_pri(queue, pri), -1)
            if raw is None:
                continue
            try:
                sent = float(json.loads(raw)["headers"][SENT_AT])
            except (ValueError, KeyError, TypeError):
                return None
            oldest = min(oldest, sent)
        return oldest

    def unacked_ids(self) -> set[str]:
        """Task ids of every message a worker holds (bounded by the messages in flight)."""
        found: set[str] = set()
        for _tag, raw in self.client.hscan_iter(self.ch.unacked_key, count=500):
            try:
                found.add(str(json.loads(raw)[0]["headers"]["id"]))
            except (ValueError, KeyError, TypeError, IndexError):
                continue
        return found


@contextlib.contextmanager
def _broker(app: Any) -> Iterator[_Broker | None]:
    with app.connection_for_write() as conn:
        if conn.transport.driver_type != "redis":
            yield None
            return
        yield _Broker(conn.default_channel)


def _lost(
    ids: list[str], broker: _Broker, report: Report | None, before: dict[str, float] | None = None
) -> list[str]:
    """Of ``ids``, those found nowhere (see the module doc). ``before``: the times seen at
    the first look (an entry recorded again since is not lost)."""
    from agentjobs.reliability import idempotency

    entries = ledger.get(ids)
    if before is not None:
        entries = {t: e for t, e in entries.items() if before.get(t) == e.sent_at}
    heads = {q: broker.oldest_sent(q) for q in {e.queue for e in entries.values()}}
    rest = []
    for e in entries.values():
        head = heads[e.queue]
        if head is None or e.sent_at >= head - ORDER_SLACK_S:
            if report:
                report.queued += 1
        else:
            rest.append(e)
    if not rest:
        return []
    state = ledger.client()
    pipe = state.pipeline(transaction=False)
    for e in rest:
        pipe.exists(idempotency.lease_key(e.key))
    leased = pipe.execute()
    rest = [e for e, held in zip(rest, leased, strict=True) if not held]
    if report:
        report.leased += len(leased) - len(rest)
    if not rest:
        return []
    held = broker.unacked_ids()
    lost = [e.task_id for e in rest if e.task_id not in held]
    if report:
        report.unacked += len(rest) - len(lost)
    return lost


def sweep(
    app: Any,
    *,
    grace_s: float | None = None,
    confirm_s: float = CONFIRM_S,
    dry_run: bool = False,
    now: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    limit: int = 10_000,
    lock_wait_s: float = 0.0,
) -> Report:
    """One sweep: re-send the ledger's lost tasks (none if ``dry_run``). Skipped (see
    ``Report.skipped``) when another sweeper holds the lock past ``lock_wait_s``."""
    s = get_settings()
    grace = s.ledger_grace_s if grace_s is None else grace_s
    report = Report(dry_run=dry_run)
    if not ledger.is_redis_broker(app.conf.broker_url):
        report.skipped = "the broker is not Redis (no lost-message window)"
        return report
    state = ledger.client()
    token = uuid.uuid4().hex
    if not dry_run:
        ttl_ms = int((confirm_s + 60.0) * 1000)
        deadline = time.monotonic() + lock_wait_s
        while not state.set(ledger.lock_key(), token, nx=True, px=ttl_ms):
            if time.monotonic() >= deadline:
                report.skipped = "another sweeper holds the lock"
                return report
            time.sleep(0.05)
    try:
        t = now()
        stale = ledger.older_than(t - s.result_ttl_s, limit)
        if stale:  # their outcome, if any, has expired too: nothing left to judge by
            log.warning("submit ledger: dropping %d entries older than the result TTL", len(stale))
            if not dry_run:
                ledger.remove(stale)
                ledger.count("expired", len(stale))
            report.expired = len(stale)
        ids = ledger.older_than(t - grace, limit)
        report.checked = len(ids)
        with _broker(app) as broker:
            if broker is None:
                report.skipped = "the broker is not Redis (no lost-message window)"
                return report
            suspects = _lost(ids, broker, report)
            if suspects:
                first = {tid: e.sent_at for tid, e in ledger.get(suspects).items()}
                if confirm_s > 0:
                    sleep(confirm_s)
                report.lost = _lost(suspects, broker, None, before=first)
        if not dry_run:
            for tid, e in ledger.get(report.lost, with_kwargs=True).items():
                kwargs = e.kwargs or {}
                app.send_task(TASK_NAME, kwargs=kwargs, queue=e.queue, task_id=tid)
                ledger.record(tid, kwargs, e.queue, resent=e.resent + 1)
                report.resent.append(tid)
                log.warning(
                    "submit ledger: task %s (key %s, queue %s, recorded %.0fs ago) was lost "
                    "by the broker: sent again",
                    tid,
                    e.key,
                    e.queue,
                    t - e.sent_at,
                )
            ledger.count("resent", len(report.resent))
        report.in_ledger = ledger.size()
    finally:
        if not dry_run:
            store.unlock(state, ledger.lock_key(), token)
    return report


# -- the in-worker sweeper ---------------------------------------------------------------


class _Sweeper(WorkerThread):
    """Sweeps every ``AGENTJOBS_LEDGER_SWEEP_INTERVAL_S`` while its worker runs."""

    name = "agentjobs-ledger-sweeper"

    def interval(self) -> float:
        return get_settings().ledger_sweep_interval_s

    def tick(self) -> None:
        sweep(self.app)


_sweepers: PerWorker[_Sweeper] = PerWorker()


def start(worker: Any) -> None:
    """Start the sweeper thread of a worker that is ready (the ``worker_ready`` handler);
    nothing when the interval is 0, the ledger is off or the broker is not Redis."""
    s = get_settings()
    app = getattr(worker, "app", None)
    if app is None or s.ledger_sweep_interval_s <= 0 or not ledger.enabled(app):
        return
    _sweepers.start(worker, lambda: _Sweeper(worker, app))

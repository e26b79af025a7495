"""The one metrics layer: every figure operators watch, stored in Redis, read anywhere.

Writers (the handlers in ``ops/signals/``) add to counters and histograms with an
:class:`Update`; one script call adds each value twice, to the all-time hash and to
the hash of the current minute (kept ``AGENTJOBS_METRICS_RETENTION_MIN``). So every
worker process on every host adds into the same numbers, and readers see them
exactly: ``agentjobs stats`` sums the minute hashes of the last N minutes, and the
exporter (``agentjobs exporter``) serves the all-time hash to Prometheus. What may be
recorded (names, kinds, labels, buckets) is ``metric_specs.py``'s table.

Live gauges are not counters: calls in flight and live workers are sorted sets scored
by time (a killed process's entries age out), queue depth comes from the broker
(``depth.py``), dead-letter size from the dead-letter store. An update can mark a call
in flight or forget one in its same script call.

Field layout in the hashes (labels in the order of ``METRICS``)::

    c|<name>|<label values...>            counter (integer; cost in 1e-10 USD)
    h|<name>|<bucket index>|<labels...>   histogram bucket count
    s|<name>|<labels...>                  histogram sum, microseconds
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from agentjobs import store
from agentjobs.keys import key
from agentjobs.ops.metric_specs import (
    BUCKETS_S,
    COST_SCALE,
    METRICS,
    OUTCOMES,
    SUM_SCALE,
    TOKEN_KINDS,
    Metric,
    bucket_index,
    check,
    clean,
    quantile,
)
from agentjobs.reliability import deadletter
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

# The table is read through this module too (``metrics.METRICS``, ``metrics.quantile``):
# readers import one module for the figures and their meaning.
__all__ = [
    "BUCKETS_S",
    "COST_SCALE",
    "METRICS",
    "OUTCOMES",
    "SUM_SCALE",
    "TOKEN_KINDS",
    "WORKER_HEARTBEAT_S",
    "WORKER_TTL_S",
    "Metric",
    "Snapshot",
    "Update",
    "bucket_index",
    "call_finished",
    "call_started",
    "calls_in_flight",
    "dead_letter_size",
    "minute_key",
    "quantile",
    "read_minutes",
    "read_total",
    "read_window",
    "reset",
    "total_key",
    "worker_gone",
    "worker_seen",
    "workers_alive",
]

log = logging.getLogger(__name__)

#: A worker that has not refreshed its registration for this long counts as gone.
WORKER_TTL_S = 30.0
#: How often a worker refreshes its registration.
WORKER_HEARTBEAT_S = 10.0


def total_key() -> str:
    return key("metrics", "total")


def minute_key(minute: int) -> str:
    return key("metrics", "m", str(minute))


_ADD_LUA = store.lua("agentjobs.ops", "metrics_add.lua")


@dataclass
class Update:
    """Increments gathered during one event, written by :meth:`commit` in one round trip."""

    fields: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: A call to mark in flight, and until when it may run (see :func:`call_started`).
    call_start: tuple[str, float] | None = None
    #: An in-flight call to forget.
    call_done: str = ""

    def inc(self, name: str, labels: Sequence[str], value: float = 1) -> None:
        m = check(name, "counter", labels)
        amount = round(value * m.scale)
        if amount:
            self.fields["|".join(("c", name, *clean(labels)))] += amount

    def observe(self, name: str, labels: Sequence[str], seconds: float) -> None:
        m = check(name, "histogram", labels)
        seconds = max(0.0, float(seconds))
        values = clean(labels)
        self.fields["|".join(("h", name, str(bucket_index(seconds, m.buckets)), *values))] += 1
        self.fields["|".join(("s", name, *values))] += round(seconds * SUM_SCALE)

    def start_call(
        self,
        call_id: str,
        queue: str,
        model: str,
        now: float | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.call_start = (
            _inflight_member(call_id, queue, model),
            (time.time() if now is None else now) + _inflight_for_s(max_tokens),
        )

    def finish_call(self, call_id: str, queue: str, model: str) -> None:
        self.call_done = _inflight_member(call_id, queue, model)

    def commit(self, client: redis.Redis | None = None, now: float | None = None) -> None:
        """Add everything to the all-time and the current-minute hash; never raises.

        One Lua call (``metrics_add.lua``), so an update is added whole or not at all.
        """
        if not (self.fields or self.call_start or self.call_done):
            return
        if not get_settings().metrics_enabled:
            return
        try:
            r = client or state_redis()
            minute = int((time.time() if now is None else now) // 60)
            ttl = get_settings().metrics_retention_min * 60 + 120
            started, until = self.call_start or ("", 0.0)
            args: list[Any] = [ttl, self.call_done, started, repr(until)]
            for f, v in self.fields.items():
                args += (f, v)
            keys = [total_key(), minute_key(minute), _inflight_key()]
            store.script(r, _ADD_LUA)(keys=keys, args=args)
        except redis.RedisError as exc:
            # Metrics must never fail a task; the loss is logged so it is not silent.
            log.warning("agentjobs metrics: lost %d increments: %s", len(self.fields), exc)
        finally:
            self.fields = defaultdict(int)
            self.call_start = None
            self.call_done = ""


# --- reading ------------------------------------------------------------------------


@dataclass
class Snapshot:
    """Counters and histograms summed over some minutes (or all time)."""

    counters: dict[str, dict[tuple[str, ...], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )
    buckets: dict[str, dict[tuple[str, ...], list[int]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    sums: dict[str, dict[tuple[str, ...], float]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(float))
    )

    def add_fields(self, raw: dict[bytes, bytes]) -> None:
        for f, v in raw.items():
            parts = f.decode().split("|")
            n = int(v)
            kind, name = parts[0], parts[1]
            m = METRICS.get(name)
            if m is None:
                continue  # written by a newer version: ignore, do not crash the reader
            if kind == "c":
                self.counters[name][tuple(parts[2:])] += n / m.scale
            elif kind == "h":
                counts = self.buckets[name].setdefault(tuple(parts[3:]), [0] * len(m.buckets))
                counts[int(parts[2])] += n
            elif kind == "s":
                self.sums[name][tuple(parts[2:])] += n / SUM_SCALE

    def merge(self, other: Snapshot) -> None:
        """Add ``other``'s counts to this snapshot's (minutes summed into a window)."""
        for name, series in other.counters.items():
            for labels, v in series.items():
                self.counters[name][labels] += v
        for name, hist in other.buckets.items():
            for labels, counts in hist.items():
                mine = self.buckets[name].setdefault(labels, [0] * len(counts))
                for i, n in enumerate(counts):
                    mine[i] += n
        for name, series in other.sums.items():
            for labels, v in series.items():
                self.sums[name][labels] += v

    def _match(self, name: str, labels: tuple[str, ...], where: dict[str, str]) -> bool:
        names = METRICS[name].labels
        return all(labels[names.index(k)] == v for k, v in where.items())

    def sum(self, name: str, **where: str) -> float:
        """Sum of a counter (or a histogram's observation count) over matching labels."""
        if METRICS[name].kind == "histogram":
            return float(sum(sum(c) for c in self._hist(name, where)))
        series = self.counters.get(name, {})
        return sum(v for labels, v in series.items() if self._match(name, labels, where))

    def by(self, name: str, label: str, **where: str) -> dict[str, float]:
        """A counter summed per value of one label."""
        i = METRICS[name].labels.index(label)
        out: dict[str, float] = defaultdict(float)
        for labels, v in self.counters.get(name, {}).items():
            if self._match(name, labels, where):
                out[labels[i]] += v
        return dict(out)

    def _hist(self, name: str, where: dict[str, str]) -> list[list[int]]:
        series = self.buckets.get(name, {})
        return [c for labels, c in series.items() if self._match(name, labels, where)]

    def histogram(self, name: str, **where: str) -> list[int]:
        """Merged non-cumulative bucket counts (aligned with the metric's buckets)."""
        merged = [0] * len(METRICS[name].buckets)
        for counts in self._hist(name, where):
            for i, n in enumerate(counts):
                merged[i] += n
        return merged

    def hist_sum(self, name: str, **where: str) -> float:
        series = self.sums.get(name, {})
        return sum(v for labels, v in series.items() if self._match(name, labels, where))

    def quantile(self, name: str, q: float, **where: str) -> float | None:
        """The q-quantile in seconds (None without observations); see :func:`quantile`."""
        return quantile(self.histogram(name, **where), q, METRICS[name].buckets)

    def label_values(self, label: str) -> set[str]:
        """Every value a label takes in any series (e.g. every queue seen)."""
        seen: set[str] = set()
        for group in (self.counters, self.buckets, self.sums):
            for name, series in group.items():
                names = METRICS[name].labels
                if label in names:
                    seen.update(labels[names.index(label)] for labels in series)
        return seen


def read_total(client: redis.Redis | None = None) -> Snapshot:
    """Everything since the metrics were first written (or last reset)."""
    snap = Snapshot()
    snap.add_fields((client or state_redis()).hgetall(total_key()))
    return snap


def read_window(
    minutes: int, client: redis.Redis | None = None, now: float | None = None
) -> Snapshot:
    """The last ``minutes`` whole minutes, the current one included."""
    snap = Snapshot()
    for minute in read_minutes(minutes, client, now)[1]:
        snap.merge(minute)
    return snap


def read_minutes(
    minutes: int, client: redis.Redis | None = None, now: float | None = None
) -> tuple[int, list[Snapshot]]:
    """The same minutes one by one, for per-minute series: the first one (a Unix minute,
    seconds // 60) and a Snapshot a minute, oldest first (empty where nothing was
    written, or past ``AGENTJOBS_METRICS_RETENTION_MIN``)."""
    r = client or state_redis()
    first = int((time.time() if now is None else now) // 60) - minutes + 1
    pipe = r.pipeline(transaction=False)
    for m in range(first, first + minutes):
        pipe.hgetall(minute_key(m))
    snaps = []
    for raw in pipe.execute():
        snap = Snapshot()
        snap.add_fields(raw)
        snaps.append(snap)
    return first, snaps


def reset(client: redis.Redis | None = None) -> None:
    """Delete every metrics key (tests, or an operator starting over)."""
    r = client or state_redis()
    names = list(r.scan_iter(match=key("metrics", "*"), count=1000))
    if names:
        r.delete(*names)


# --- live gauges --------------------------------------------------------------------


def _inflight_key() -> str:
    return key("metrics", "inflight")


def _workers_key(queue: str) -> str:
    return key("metrics", "workers", queue)


def _safely(fn: Callable[[], Any], what: str) -> Any:
    try:
        return fn()
    except redis.RedisError as exc:
        log.warning("agentjobs metrics: %s failed: %s", what, exc)
        return None


def _inflight_member(call_id: str, queue: str, model: str) -> str:
    return "|".join((*clean((queue, model)), call_id))


def _inflight_for_s(max_tokens: int | None) -> float:
    """How long a call's in-flight mark outlives its start if never finished: the bound
    of a call of its ``max_tokens`` (``Settings.call_timeout_s``), + 1 min."""
    s = get_settings()
    return s.call_timeout_s(max_tokens or s.default_max_tokens) + 60


def call_started(
    call_id: str,
    queue: str,
    model: str,
    now: float | None = None,
    max_tokens: int | None = None,
) -> None:
    """Mark one API call in flight until it is finished (``Update.finish_call`` or
    :func:`call_finished`), or until a call of its ``max_tokens`` would have ended."""
    u = Update()
    u.start_call(call_id, queue, model, now, max_tokens)
    u.commit()


def call_finished(call_id: str, queue: str, model: str) -> None:
    u = Update()
    u.finish_call(call_id, queue, model)
    u.commit()


def calls_in_flight(
    client: redis.Redis | None = None, now: float | None = None
) -> dict[tuple[str, str], int]:
    """Calls under way per (queue, model). Each mark is scored by the end of its own
    call's bound (:func:`_inflight_for_s`, from its ``max_tokens``): one past it belongs
    to a killed process and is dropped, and a long answer still streaming is counted
    however long it runs."""
    r = client or state_redis()
    ts = time.time() if now is None else now
    r.zremrangebyscore(_inflight_key(), "-inf", ts)
    out: dict[tuple[str, str], int] = defaultdict(int)
    for member in r.zrange(_inflight_key(), 0, -1):
        queue, model, _ = member.decode().split("|", 2)
        out[(queue, model)] += 1
    return dict(out)


def worker_seen(
    hostname: str,
    queues: Iterable[str],
    client: redis.Redis | None = None,
    now: float | None = None,
) -> None:
    """Register (or refresh) a live worker for each of its queues."""
    ts = time.time() if now is None else now

    def write() -> None:
        pipe = (client or state_redis()).pipeline(transaction=False)
        for q in queues:
            pipe.zadd(_workers_key(q), {hostname: ts})
            pipe.expire(_workers_key(q), 86_400)
        pipe.execute()

    _safely(write, "worker_seen")


def worker_gone(hostname: str, queues: Iterable[str], client: redis.Redis | None = None) -> None:
    def write() -> None:
        pipe = (client or state_redis()).pipeline(transaction=False)
        for q in queues:
            pipe.zrem(_workers_key(q), hostname)
        pipe.execute()

    _safely(write, "worker_gone")


def workers_alive(
    queues: Iterable[str], client: redis.Redis | None = None, now: float | None = None
) -> dict[str, int]:
    """Live workers per queue (registered and refreshed within WORKER_TTL_S)."""
    r = client or state_redis()
    ts = time.time() if now is None else now
    pipe = r.pipeline(transaction=False)
    qs = list(queues)
    for q in qs:
        pipe.zcount(_workers_key(q), ts - WORKER_TTL_S, "+inf")
    return dict(zip(qs, (int(n) for n in pipe.execute()), strict=True))


def dead_letter_size() -> int | None:
    """Records in the dead-letter store now (None when the state store cannot say)."""
    try:
        return deadletter.count()
    except redis.RedisError as exc:
        log.warning("agentjobs metrics: dead-letter count failed: %s", exc)
        return None

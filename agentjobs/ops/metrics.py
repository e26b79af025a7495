"""The one metrics layer: every figure operators watch, stored in Redis, read anywhere.

Writers (the handlers in ``signals.py``) add to counters and histograms with a
:class:`Batch`; one pipelined round trip adds each value twice, to the all-time hash
and to the hash of the current minute (kept ``AGENTJOBS_METRICS_RETENTION_MIN``). So
every worker process on every host adds into the same numbers, and readers see them
exactly: ``agentjobs stats`` sums the minute hashes of the last N minutes, and the
exporter (``agentjobs exporter``) serves the all-time hash to Prometheus.

Histograms use the fixed buckets :data:`BUCKETS_S` (non-cumulative counts per bucket
in Redis), so a percentile over any set of workers and minutes is computed from merged
buckets, as Prometheus' ``histogram_quantile`` does.

Live gauges are not counters: calls in flight and live workers are sorted sets scored
by time (a killed process's entries age out), queue depth comes from the broker
(``depth.py``), dead-letter size from the dead-letter store.

Field layout in the hashes (labels in the order of :data:`METRICS`)::

    c|<name>|<label values...>            counter (integer; cost in 1e-10 USD)
    h|<name>|<bucket index>|<labels...>   histogram bucket count
    s|<name>|<labels...>                  histogram sum, microseconds
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from agentjobs import store
from agentjobs.keys import key
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

#: Histogram bucket upper bounds, seconds; the last one is +Inf. Claude calls take
#: 2-30 s, queue waits can take minutes, limiter waits are mostly sub-second.
BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    20.0, 30.0, 60.0, 120.0, 300.0, 600.0, math.inf,
)  # fmt: skip

#: Cost is kept as an integer of this many units per USD, so sums are exact.
COST_SCALE = 10**10
#: Histogram sums are kept in integer microseconds.
SUM_SCALE = 10**6
#: A worker that has not refreshed its registration for this long counts as gone.
WORKER_TTL_S = 30.0
#: How often a worker refreshes its registration.
WORKER_HEARTBEAT_S = 10.0

OUTCOMES = ("succeeded", "failed", "dead_lettered", "rejected", "revoked")
TOKEN_KINDS = ("input", "output", "cache_creation", "cache_read")


@dataclass(frozen=True)
class Metric:
    """One metric: its Prometheus name is ``agentjobs_<name>`` (+ ``_total`` for counters)."""

    name: str
    kind: str  # counter | histogram | gauge
    labels: tuple[str, ...]
    help: str
    scale: int = 1

    @property
    def prom_name(self) -> str:
        return f"agentjobs_{self.name}"


_QM = ("queue", "model")
_C, _H, _G = "counter", "histogram", "gauge"
_FC = (*_QM, "failure_class")
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("tasks_published", _C, _QM, "Tasks submitted (first publish only)."),
        Metric("tasks_received", _C, ("queue",), "Task messages received (redeliveries too)."),
        Metric("tasks_started", _C, ("queue",), "Task executions started (retries too)."),
        Metric("tasks", _C, (*_QM, "outcome"), "Tasks finished, by outcome."),
        Metric("retries", _C, _FC, "Retries scheduled, by failure class."),
        Metric("errors", _C, _FC, "Failed attempts (retried or final), by failure class."),
        Metric("dead_lettered", _C, _FC, "Tasks dead-lettered, by failure class."),
        Metric("api_requests", _C, (*_QM, "status"), "Messages API answers by HTTP status."),
        Metric("rate_limited", _C, _QM, "429 answers from the Messages API."),
        Metric("cache_hits", _C, _QM, "Tasks answered from the response cache."),
        Metric("cache_misses", _C, _QM, "Tasks that succeeded by calling the API."),
        Metric("tokens", _C, (*_QM, "kind"), "Tokens of API answers, by kind."),
        Metric("cost_usd", _C, _QM, "USD of API answers at list price.", COST_SCALE),
        Metric("queue_wait_seconds", _H, ("queue",), "Publish (or ETA) to execution start."),
        Metric("limiter_wait_seconds", _H, ("queue",), "Wait for the global limiter."),
        Metric("call_seconds", _H, _QM, "Duration of one Messages API call."),
        Metric("end_to_end_seconds", _H, ("queue",), "First publish to final outcome."),
        Metric("calls_in_flight", _G, _QM, "Messages API calls under way now."),
        Metric("queue_depth", _G, ("queue",), "Messages waiting in the broker queue."),
        Metric("workers", _G, ("queue",), "Live workers consuming from the queue."),
        Metric("dead_letters", _G, (), "Dead-letter records stored now."),
    )
}


def _check(name: str, kind: str, labels: Sequence[str]) -> Metric:
    m = METRICS[name]
    if m.kind != kind or len(labels) != len(m.labels):
        raise ValueError(f"{name} is a {m.kind} with labels {m.labels}, got {kind} {labels}")
    return m


def _clean(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(v).replace("|", "/") for v in values)


def bucket_index(seconds: float) -> int:
    for i, bound in enumerate(BUCKETS_S):
        if seconds <= bound:
            return i
    return len(BUCKETS_S) - 1


def total_key() -> str:
    return key("metrics", "total")


def minute_key(minute: int) -> str:
    return key("metrics", "m", str(minute))


_ADD_LUA = store.lua("agentjobs.ops", "metrics_add.lua")


@dataclass
class Batch:
    """Increments gathered during one event, written by :meth:`commit` in one round trip."""

    fields: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: An in-flight call to forget in the same round trip (see :func:`call_started`).
    call_done: str = ""

    def inc(self, name: str, labels: Sequence[str], value: float = 1) -> None:
        m = _check(name, "counter", labels)
        amount = round(value * m.scale)
        if amount:
            self.fields["|".join(("c", name, *_clean(labels)))] += amount

    def observe(self, name: str, labels: Sequence[str], seconds: float) -> None:
        _check(name, "histogram", labels)
        seconds = max(0.0, float(seconds))
        values = _clean(labels)
        self.fields["|".join(("h", name, str(bucket_index(seconds)), *values))] += 1
        self.fields["|".join(("s", name, *values))] += round(seconds * SUM_SCALE)

    def finish_call(self, call_id: str, queue: str, model: str) -> None:
        self.call_done = _inflight_member(call_id, queue, model)

    def commit(self, client: redis.Redis | None = None, now: float | None = None) -> None:
        """Add everything to the all-time and the current-minute hash; never raises.

        One Lua call (``metrics_add.lua``), so a batch is added whole or not at all.
        """
        if not (self.fields or self.call_done) or not get_settings().metrics_enabled:
            return
        try:
            r = client or state_redis()
            minute = int((time.time() if now is None else now) // 60)
            ttl = get_settings().metrics_retention_min * 60 + 120
            args: list[Any] = [ttl, self.call_done]
            for f, v in self.fields.items():
                args += (f, v)
            keys = [total_key(), minute_key(minute), _inflight_key()]
            store.script(r, _ADD_LUA)(keys=keys, args=args)
        except redis.RedisError as exc:
            # Metrics must never fail a task; the loss is logged so it is not silent.
            log.warning("agentjobs metrics: lost %d increments: %s", len(self.fields), exc)
        finally:
            self.fields = defaultdict(int)
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
                counts = self.buckets[name].setdefault(tuple(parts[3:]), [0] * len(BUCKETS_S))
                counts[int(parts[2])] += n
            elif kind == "s":
                self.sums[name][tuple(parts[2:])] += n / SUM_SCALE

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
        """Merged non-cumulative bucket counts (aligned with BUCKETS_S)."""
        merged = [0] * len(BUCKETS_S)
        for counts in self._hist(name, where):
            for i, n in enumerate(counts):
                merged[i] += n
        return merged

    def hist_sum(self, name: str, **where: str) -> float:
        series = self.sums.get(name, {})
        return sum(v for labels, v in series.items() if self._match(name, labels, where))

    def quantile(self, name: str, q: float, **where: str) -> float | None:
        """The q-quantile in seconds (None without observations); see :func:`quantile`."""
        return quantile(self.histogram(name, **where), q)

    def label_values(self, label: str) -> set[str]:
        """Every value a label takes in any series (e.g. every queue seen)."""
        seen: set[str] = set()
        for group in (self.counters, self.buckets, self.sums):
            for name, series in group.items():
                names = METRICS[name].labels
                if label in names:
                    seen.update(labels[names.index(label)] for labels in series)
        return seen


def quantile(counts: Sequence[int], q: float) -> float | None:
    """Linear interpolation inside the bucket holding the q-th observation.

    Same rule as Prometheus' ``histogram_quantile``: a quantile in the +Inf bucket is
    the highest finite bound.
    """
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            upper = BUCKETS_S[i]
            if math.isinf(upper):
                return BUCKETS_S[i - 1]
            lower = BUCKETS_S[i - 1] if i else 0.0
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
    return BUCKETS_S[-2]


def read_total(client: redis.Redis | None = None) -> Snapshot:
    """Everything since the metrics were first written (or last reset)."""
    snap = Snapshot()
    snap.add_fields((client or state_redis()).hgetall(total_key()))
    return snap


def read_window(
    minutes: int, client: redis.Redis | None = None, now: float | None = None
) -> Snapshot:
    """The last ``minutes`` whole minutes, the current one included."""
    r = client or state_redis()
    current = int((time.time() if now is None else now) // 60)
    pipe = r.pipeline(transaction=False)
    for m in range(current - minutes + 1, current + 1):
        pipe.hgetall(minute_key(m))
    snap = Snapshot()
    for raw in pipe.execute():
        snap.add_fields(raw)
    return snap


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
    return "|".join((*_clean((queue, model)), call_id))


def call_started(call_id: str, queue: str, model: str, now: float | None = None) -> None:
    """Mark one API call in flight until it is finished (``Batch.finish_call`` or
    :func:`call_finished`), or until it goes stale."""
    if not get_settings().metrics_enabled:
        return
    member = _inflight_member(call_id, queue, model)
    ts = time.time() if now is None else now
    _safely(lambda: state_redis().zadd(_inflight_key(), {member: ts}), "call_started")


def call_finished(call_id: str, queue: str, model: str) -> None:
    b = Batch()
    b.finish_call(call_id, queue, model)
    b.commit()


def calls_in_flight(
    client: redis.Redis | None = None, now: float | None = None
) -> dict[tuple[str, str], int]:
    """Calls under way per (queue, model); entries older than the request timeout
    (+1 min) belong to killed processes and are dropped."""
    r = client or state_redis()
    ts = time.time() if now is None else now
    stale = ts - get_settings().request_timeout_s - 60
    r.zremrangebyscore(_inflight_key(), "-inf", stale)
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
    """Records in the dead-letter store now (None when the store is not available)."""
    try:
        from agentjobs.reliability import deadletter
    except ImportError:
        return None
    count = getattr(deadletter, "count", None)
    if count is None:
        return None
    try:
        return int(count())
    except redis.RedisError as exc:
        log.warning("agentjobs metrics: dead-letter count failed: %s", exc)
        return None

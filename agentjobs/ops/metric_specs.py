"""The metrics agentjobs records: name, kind, labels and help of each, and the buckets.

The one table (:data:`METRICS`) the writers check their increments against and the
readers (``agentjobs stats``, the Prometheus exporter, the Grafana dashboard's tests)
name their series from. Storage is ``metrics.py``'s.

Histograms use the fixed buckets :data:`BUCKETS_S` (non-cumulative counts per bucket
are stored), so a percentile over any set of workers and minutes is computed from
merged buckets (:func:`quantile`), as Prometheus' ``histogram_quantile`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
        Metric("first_token_seconds", _H, _QM, "Time to the first token of a streamed call."),
        Metric(
            "output_seconds",
            _C,
            _QM,
            "Seconds streamed calls spent writing (first token to last); output tokens "
            "per second = rate(tokens{kind=output}) / rate(this).",
            SUM_SCALE,
        ),
        Metric("end_to_end_seconds", _H, ("queue",), "First publish to final outcome."),
        Metric("calls_in_flight", _G, _QM, "Messages API calls under way now."),
        Metric("queue_depth", _G, ("queue",), "Messages waiting in the broker queue."),
        Metric("workers", _G, ("queue",), "Live workers consuming from the queue."),
        Metric("dead_letters", _G, (), "Dead-letter records stored now."),
        Metric("batch_requests_waiting", _G, ("group",), "Batch-lane requests not yet sent."),
        Metric("batch_oldest_waiting_seconds", _G, (), "Age of the oldest waiting one."),
        Metric("batches_open", _G, ("state",), "Message Batches open, by state."),
        Metric("batch_saved_usd", _G, (), "USD saved by the batch price, in total."),
    )
}


def check(name: str, kind: str, labels: Sequence[str]) -> Metric:
    """The metric ``name``, or ValueError when it is not a ``kind`` with that many labels."""
    m = METRICS[name]
    if m.kind != kind or len(labels) != len(m.labels):
        raise ValueError(f"{name} is a {m.kind} with labels {m.labels}, got {kind} {labels}")
    return m


def clean(values: Sequence[str]) -> tuple[str, ...]:
    """Label values as stored: ``|`` separates fields, so it cannot be in a value."""
    return tuple(str(v).replace("|", "/") for v in values)


def bucket_index(seconds: float) -> int:
    """The histogram bucket of an observation (``BUCKETS_S`` bounds are inclusive)."""
    for i, bound in enumerate(BUCKETS_S):
        if seconds <= bound:
            return i
    return len(BUCKETS_S) - 1


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

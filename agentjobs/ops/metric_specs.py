"""The metrics agentjobs records: name, kind, labels and help of each, and the buckets.

The one table (:data:`METRICS`) the writers check their increments against and the
readers (``agentjobs stats``, the Prometheus exporter, the Grafana dashboard's tests)
name their series from. Storage is ``metrics.py``'s.

Histograms use fixed buckets, :data:`BUCKETS_S` unless the metric names others (a
session's steps or cost is not seconds); non-cumulative counts per bucket are stored,
so a percentile over any set of workers and minutes is computed from merged buckets
(:func:`quantile`), as Prometheus' ``histogram_quantile`` does.
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

#: Agent sessions (session_metrics.py): steps or tool calls in one session, its cost in
#: USD, and an approval's wait (people answer in minutes to a day).
COUNT_BUCKETS: tuple[float, ...] = (
    0, 1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 75, 100, math.inf,
)  # fmt: skip
USD_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 25.0, math.inf,
)  # fmt: skip
WAIT_BUCKETS_S: tuple[float, ...] = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0, 86400.0, math.inf,
)  # fmt: skip

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
    #: Histogram bucket upper bounds (the last one +Inf).
    buckets: tuple[float, ...] = BUCKETS_S

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
        # Agent sessions (session_metrics.py); ``agent`` is the agent a session started with.
        Metric("sessions_started", _C, ("agent",), "Agent sessions started."),
        Metric("sessions", _C, ("agent", "status"), "Agent sessions ended, by final status."),
        Metric("sessions_reopened", _C, ("agent",), "Ended sessions re-opened by a replay."),
        Metric(
            "session_ceiling_hits",
            _C,
            ("agent", "stop_reason"),
            "Sessions stopped by a ceiling, by which one.",
        ),
        Metric("session_steps", _H, ("agent",), "Model steps per ended session.", 1, COUNT_BUCKETS),
        Metric(
            "session_tool_calls", _H, ("agent",), "Tool calls per ended session.", 1, COUNT_BUCKETS
        ),
        Metric("session_cost_usd", _H, ("agent",), "USD per ended session.", 1, USD_BUCKETS),
        Metric("session_seconds", _H, ("agent",), "Start to end of a session.", 1, WAIT_BUCKETS_S),
        Metric(
            "tool_calls",
            _C,
            ("tool", "kind"),
            "Tool calls run, by outcome (ok, invalid_input, error, timeout).",
        ),
        Metric("tool_seconds", _H, ("tool",), "Duration of one tool call."),
        Metric(
            "approval_wait_seconds",
            _H,
            ("tool",),
            "Time a tool call waited for approve or deny.",
            1,
            WAIT_BUCKETS_S,
        ),
    )
}


def exported_series() -> dict[str, set[str]]:
    """Every series name the exporter serves and its labels, as Prometheus names them:
    a counter ``<name>_total``, a histogram ``_bucket`` (with ``le``), ``_sum`` and
    ``_count``, a gauge its name. What alerts, dashboards and scalers may select."""
    out: dict[str, set[str]] = {}
    for m in METRICS.values():
        if m.kind == "counter":
            out[m.prom_name + "_total"] = set(m.labels)
        elif m.kind == "histogram":
            out[m.prom_name + "_bucket"] = {*m.labels, "le"}
            out[m.prom_name + "_sum"] = set(m.labels)
            out[m.prom_name + "_count"] = set(m.labels)
        else:
            out[m.prom_name] = set(m.labels)
    return out


def check(name: str, kind: str, labels: Sequence[str]) -> Metric:
    """The metric ``name``, or ValueError when it is not a ``kind`` with that many labels."""
    m = METRICS[name]
    if m.kind != kind or len(labels) != len(m.labels):
        raise ValueError(f"{name} is a {m.kind} with labels {m.labels}, got {kind} {labels}")
    return m


def clean(values: Sequence[str]) -> tuple[str, ...]:
    """Label values as stored: ``|`` separates fields, so it cannot be in a value."""
    return tuple(str(v).replace("|", "/") for v in values)


def bucket_index(seconds: float, buckets: Sequence[float] = BUCKETS_S) -> int:
    """The histogram bucket of an observation (the bounds are inclusive)."""
    for i, bound in enumerate(buckets):
        if seconds <= bound:
            return i
    return len(buckets) - 1


def quantile(counts: Sequence[int], q: float, buckets: Sequence[float] = BUCKETS_S) -> float | None:
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
            upper = buckets[i]
            if math.isinf(upper):
                return buckets[i - 1]
            lower = buckets[i - 1] if i else 0.0
            return lower + (upper - lower) * (rank - seen) / n
        seen += n
    return buckets[-2]

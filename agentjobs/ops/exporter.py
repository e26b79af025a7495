"""The metrics of every worker on every host as one Prometheus collector (served by
``agentjobs exporter``).

Why an aggregating exporter rather than an endpoint per worker process: workers write
their counters into Redis (``metrics.py``), so the exporter serves totals that are
already summed over all processes and hosts. Nothing is lost when a worker restarts
(a per-process counter would reset), ``--scale`` needs no scrape-config change, and
the numbers equal ``agentjobs stats`` exactly. Queue depth is read from the broker and
the dead-letter size from its store at each scrape. Several exporters may run (they
read the same Redis); scrape one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from agentjobs.ops import depth, metrics

log = logging.getLogger(__name__)


class AgentJobsCollector(Collector):
    """Reads the Redis aggregates, and the broker of ``app``, at each scrape. Queue depth
    and workers cover ``depth.known_queues(queues)``: the ``claude.*`` queues, the tools
    queue and ``queues`` (a tool's own), plus any queue the metrics name."""

    def __init__(self, app: Any, queues: Iterable[str] = ()) -> None:
        self.app = app
        self.queues = tuple(queues)

    def collect(self) -> Iterator[Metric]:
        snap = metrics.read_total()
        for m in metrics.METRICS.values():
            if m.kind == "counter":
                c = CounterMetricFamily(m.prom_name, m.help, labels=m.labels)
                for labels, value in sorted(snap.counters.get(m.name, {}).items()):
                    c.add_metric(labels, value)
                yield c
            elif m.kind == "histogram":
                h = HistogramMetricFamily(m.prom_name, m.help, labels=m.labels)
                for labels, counts in sorted(snap.buckets.get(m.name, {}).items()):
                    h.add_metric(
                        labels, _cumulative(counts, m.buckets), snap.sums[m.name].get(labels, 0.0)
                    )
                yield h
        yield from self._gauges(snap)

    def _gauges(self, snap: metrics.Snapshot) -> Iterator[Metric]:
        known = set(depth.known_queues(self.queues))
        queues = sorted(known | snap.label_values("queue") - {"unknown"})
        spec = metrics.METRICS
        g = GaugeMetricFamily(
            spec["calls_in_flight"].prom_name,
            spec["calls_in_flight"].help,
            labels=("queue", "model"),
        )
        for (queue, model), n in sorted(metrics.calls_in_flight().items()):
            g.add_metric((queue, model), n)
        yield g
        g = GaugeMetricFamily(spec["workers"].prom_name, spec["workers"].help, labels=("queue",))
        for queue, n in metrics.workers_alive(queues).items():
            g.add_metric((queue,), n)
        yield g
        g = GaugeMetricFamily(
            spec["queue_depth"].prom_name, spec["queue_depth"].help, labels=("queue",)
        )
        try:
            for queue, n in depth.queue_depths(self.app, queues).items():
                g.add_metric((queue,), n)
        except Exception as exc:  # the broker down must not hide the other figures
            log.warning("agentjobs exporter: queue depth unavailable: %s", exc)
        yield g
        size = metrics.dead_letter_size()
        g = GaugeMetricFamily(spec["dead_letters"].prom_name, spec["dead_letters"].help)
        if size is not None:
            g.add_metric((), size)
        yield g
        yield from _batch_lane(spec)


def _batch_lane(spec: dict[str, metrics.Metric]) -> Iterator[Metric]:
    """The batch lane's figures of the moment (lanes/records.py)."""
    from agentjobs.lanes import records

    over = records.overview()
    g = GaugeMetricFamily(
        spec["batch_requests_waiting"].prom_name,
        spec["batch_requests_waiting"].help,
        labels=("group",),
    )
    for group in records.groups():
        g.add_metric((group,), over["waiting"].get(group, 0))
    yield g
    g = GaugeMetricFamily(
        spec["batch_oldest_waiting_seconds"].prom_name, spec["batch_oldest_waiting_seconds"].help
    )
    g.add_metric((), over["oldest_age_s"])
    yield g
    g = GaugeMetricFamily(
        spec["batches_open"].prom_name, spec["batches_open"].help, labels=("state",)
    )
    for state in ("submitting", "in_progress"):
        g.add_metric((state,), over["open_by_state"].get(state, 0))
    yield g
    g = GaugeMetricFamily(spec["batch_saved_usd"].prom_name, spec["batch_saved_usd"].help)
    g.add_metric((), over["stats"].get("saved_usd", 0.0))
    yield g


def _cumulative(counts: list[int], buckets: tuple[float, ...]) -> list[tuple[str, float]]:
    out, running = [], 0
    for bound, n in zip(buckets, counts, strict=True):
        running += n
        out.append(("+Inf" if bound == float("inf") else repr(bound), float(running)))
    return out


def registry(app: Any, queues: Iterable[str] = ()) -> CollectorRegistry:
    """A registry of the agentjobs collector alone (no process metrics of the exporter);
    ``queues``: queues to watch beyond ``depth.known_queues()`` (a tool's own)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(AgentJobsCollector(app, queues))
    return reg

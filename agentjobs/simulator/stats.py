"""Live counters, served at ``GET /_sim/stats`` and by ``SimHandle.stats()``.

``duplicates`` counts 200 answers to a request whose hash had already been answered
with a 200: from the server's side, the calls a job system made twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.messages = 0
        self.count_tokens = 0
        self.by_status: Counter[str] = Counter()
        self.by_group: Counter[str] = Counter()
        self.by_error_type: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.rate_limited = 0
        self.rate_limited_by_dimension: Counter[str] = Counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_creation_input_tokens = 0
        self.cache_read_input_tokens = 0
        self.cost_usd = 0.0
        self.duplicates = 0
        self.calls_by_hash: Counter[str] = Counter()
        self.ok_by_hash: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        # Message Batches: batches and entries created, entries by result once their batch
        # ended, and the succeeded entries' usage (also in the totals above, at half price).
        self.batches = 0
        self.batch_requests = 0
        self.batch_results: Counter[str] = Counter()
        self.batch_input_tokens = 0
        self.batch_output_tokens = 0
        self.batch_cost_usd = 0.0

    def answered(self, digest: str | None) -> None:
        """A 200 to /v1/messages."""
        if digest is not None:
            if self.ok_by_hash[digest]:
                self.duplicates += 1
            self.ok_by_hash[digest] += 1

    def snapshot(self, hashes: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requests": self.requests,
            "messages": self.messages,
            "count_tokens": self.count_tokens,
            "ok": self.by_status.get("200", 0),
            "by_status": dict(sorted(self.by_status.items())),
            "by_group": dict(self.by_group),
            "by_error_type": dict(self.by_error_type),
            "rate_limited": self.rate_limited,
            "rate_limited_by_dimension": dict(self.rate_limited_by_dimension),
            "faults": dict(self.faults),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "duplicates": self.duplicates,
            "distinct_hashes": len(self.calls_by_hash),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "batches": self.batches,
            "batch_requests": self.batch_requests,
            "batch_results": dict(self.batch_results),
            "batch_input_tokens": self.batch_input_tokens,
            "batch_output_tokens": self.batch_output_tokens,
            "batch_cost_usd": round(self.batch_cost_usd, 6),
        }
        if hashes:
            data["calls_by_hash"] = dict(self.calls_by_hash)
            data["ok_by_hash"] = dict(self.ok_by_hash)
        return data

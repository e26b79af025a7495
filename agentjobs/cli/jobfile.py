"""A batch of ``complete`` requests: read and validate, send, collect, summarise.

``read_requests`` turns JSONL lines into ``Item``s (bad lines become INVALID items
with a message), ``run_batch`` sends the valid ones and waits for every result,
``Summary`` holds the figures. ``agentjobs submit`` (submit.py) and the demo use it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from agentjobs.cli.table import usd
from agentjobs.errors import AgentJobsError, RequestError

#: Seconds between two polls of the result backend.
POLL_INTERVAL_S = 0.05


@dataclass
class Item:
    """One input line and, once known, its outcome."""

    line: int
    kwargs: dict[str, Any] | None = None
    task_id: str | None = None
    status: str = "PENDING"  # PENDING, SUCCESS, FAILURE, INVALID, TIMEOUT
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    submitted_at: float = 0.0
    finished_at: float = 0.0

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "task_id": self.task_id, "status": self.status}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class Summary:
    """Figures of one batch; ``as_dict`` is the ``--json`` output."""

    total: int = 0
    done: int = 0
    failed: int = 0
    invalid: int = 0
    timed_out: int = 0
    wall_s: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    end_to_end_ms: list[float] = field(default_factory=list)
    limiter_wait_ms: list[float] = field(default_factory=list)
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    by_queue: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "invalid": self.invalid,
            "timed_out": self.timed_out,
            "wall_s": round(self.wall_s, 3),
            "throughput_per_s": round(self.done / self.wall_s, 2) if self.wall_s else 0.0,
            "latency_ms": {
                "p50": percentile(self.latency_ms, 50),
                "p99": percentile(self.latency_ms, 99),
            },
            "end_to_end_ms": {
                "p50": percentile(self.end_to_end_ms, 50),
                "p99": percentile(self.end_to_end_ms, 99),
            },
            "limiter_wait_ms": {
                "p50": percentile(self.limiter_wait_ms, 50),
                "p99": percentile(self.limiter_wait_ms, 99),
            },
            "cached": self.cached,
            "tokens": {
                "input": self.input_tokens,
                "output": self.output_tokens,
                "cache_read": self.cache_read_input_tokens,
            },
            "cost_usd": round(self.cost_usd, 6),
            "by_queue": dict(sorted(self.by_queue.items())),
        }

    def text(self) -> str:
        d = self.as_dict()
        lat, e2e, wait, tok = d["latency_ms"], d["end_to_end_ms"], d["limiter_wait_ms"], d["tokens"]
        lines = [
            f"done {self.done}/{self.total}, failed {self.failed}, invalid {self.invalid}, "
            f"timed out {self.timed_out} in {d['wall_s']:.1f} s ({d['throughput_per_s']}/s)",
            f"latency (API call) p50 {_ms(lat['p50'])}, p99 {_ms(lat['p99'])}; "
            f"submit to result p50 {_ms(e2e['p50'])}, p99 {_ms(e2e['p99'])}; "
            f"rate-limit wait p50 {_ms(wait['p50'])}, p99 {_ms(wait['p99'])}",
            f"tokens in {tok['input']:,}, out {tok['output']:,}, cache read "
            f"{tok['cache_read']:,}; cost ${usd(d['cost_usd'])}; {self.cached} from the cache",
        ]
        if self.by_queue:
            lines.append("by queue: " + ", ".join(f"{q} {n}" for q, n in d["by_queue"].items()))
        return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


# -- reading ---------------------------------------------------------------------


def read_requests(lines: Iterable[str | bytes]) -> list[Item]:
    """Parse and validate every non-blank line; bad ones become INVALID items."""
    from agentjobs.messages.request import parse_request

    items = []
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                message = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
                bad = Item(line=number, status="INVALID")
                bad.error = {"type": "RequestError", "message": message}
                items.append(bad)
                continue
        text = raw.strip().lstrip("\ufeff")  # a byte-order mark some editors write
        if not text:
            continue
        item = Item(line=number)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            item.status = "INVALID"
            item.error = {"type": "RequestError", "message": f"not valid JSON: {exc}"}
            items.append(item)
            continue
        if not isinstance(obj, dict):
            item.status = "INVALID"
            item.error = {
                "type": "RequestError",
                "message": "expected a JSON object of complete() keyword arguments, "
                f"got {type(obj).__name__}",
            }
            items.append(item)
            continue
        try:
            parse_request(obj)
        except RequestError as exc:
            item.status = "INVALID"
            item.error = {"type": "RequestError", "message": str(exc)}
        else:
            item.kwargs = obj
        items.append(item)
    return items


def invalid_report(items: list[Item], limit: int = 20) -> str:
    bad = [i for i in items if i.status == "INVALID"]
    shown = [f"  line {i.line}: {i.error['message'] if i.error else '?'}" for i in bad[:limit]]
    if len(bad) > limit:
        shown.append(f"  ... and {len(bad) - limit} more")
    return "\n".join(shown)


# -- running ---------------------------------------------------------------------


def submit_all(items: list[Item], on_sent: Callable[[Item], None] = lambda _: None) -> None:
    """Enqueue every valid item; an error at send time marks that item failed."""
    from agentjobs.worker.tasks import complete

    for item in items:
        if item.kwargs is None:
            continue
        on_sent(item)
        item.submitted_at = time.monotonic()
        try:
            item.task_id = complete.apply_async(kwargs=item.kwargs).id
        except AgentJobsError as exc:
            item.status = "FAILURE"
            item.error = _error(exc)


def _error(exc: BaseException | Any) -> dict[str, str]:
    if isinstance(exc, BaseException):
        return {"type": type(exc).__name__, "message": str(exc)}
    return {"type": "Error", "message": str(exc)}


def _ready(task_ids: set[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """One poll of the result backend: (task_id, meta) of the tasks that are done."""
    from celery.backends.base import BaseKeyValueStoreBackend

    from agentjobs.worker.app import publishing_app

    # Where complete published: a project's app once agentjobs is installed on it
    # (`celery -A proj agentjobs submit`), whose results are in its own backend.
    backend = publishing_app().backend
    if isinstance(backend, BaseKeyValueStoreBackend):
        # One MGET per poll; max_iterations=1 hands control back after one round.
        yield from backend.get_many(set(task_ids), interval=POLL_INTERVAL_S, max_iterations=1)
        return
    for task_id in list(task_ids):
        meta = backend.get_task_meta(task_id)
        if meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
            yield task_id, meta
    time.sleep(POLL_INTERVAL_S)


def collect(
    items: list[Item], timeout: float, on_done: Callable[[Item], None] = lambda _: None
) -> None:
    """Wait for every submitted item; those still pending after ``timeout`` s time out."""
    pending = {i.task_id: i for i in items if i.task_id and i.status == "PENDING"}
    deadline = time.monotonic() + timeout
    while pending:
        for task_id, meta in _ready(set(pending)):
            item = pending.pop(task_id, None)
            if item is None:
                continue
            item.finished_at = time.monotonic()
            if meta.get("status") == "SUCCESS" and isinstance(meta.get("result"), dict):
                item.status = "SUCCESS"
                item.result = meta["result"]
            else:
                item.status = "FAILURE"
                item.error = _error(meta.get("result"))
            on_done(item)
        if pending and time.monotonic() > deadline:
            for item in pending.values():
                item.status = "TIMEOUT"
                item.error = {
                    "type": "TimeoutError",
                    "message": f"no result after {timeout:g} s (task still queued or running)",
                }
                on_done(item)
            return


def interrupted(items: list[Item]) -> tuple[int, int]:
    """Mark the items without an outcome INTERRUPTED (submit stopped by Ctrl-C): the
    sent ones are still queued or running, and keep their task id; (sent, not sent)."""
    sent = unsent = 0
    for item in items:
        if item.kwargs is None or item.status != "PENDING":
            continue
        item.status = "INTERRUPTED"
        if item.task_id:
            sent += 1
            message = "submit was interrupted: the task is still queued or running"
        else:
            unsent += 1
            message = "submit was interrupted before this line was sent"
        item.error = {"type": "Interrupted", "message": message}
    return sent, unsent


def summarise(items: list[Item], wall_s: float) -> Summary:
    s = Summary(total=len(items), wall_s=wall_s)
    for item in items:
        if item.status == "SUCCESS" and item.result is not None:
            s.done += 1
            r = item.result
            s.latency_ms.append(float(r.get("latency_ms", 0.0)))
            s.end_to_end_ms.append((item.finished_at - item.submitted_at) * 1000.0)
            s.limiter_wait_ms.append(float(r.get("limiter_wait_ms") or 0.0))
            s.cached += bool(r.get("cached"))
            usage = r.get("usage") or {}
            s.input_tokens += int(usage.get("input_tokens", 0))
            s.output_tokens += int(usage.get("output_tokens", 0))
            s.cache_read_input_tokens += int(usage.get("cache_read_input_tokens", 0))
            s.cost_usd += float(r.get("cost_usd", 0.0))
            queue = str(r.get("queue", "?"))
            s.by_queue[queue] = s.by_queue.get(queue, 0) + 1
        elif item.status == "INVALID":
            s.invalid += 1
        elif item.status == "TIMEOUT":
            s.timed_out += 1
        else:
            s.failed += 1
    return s


def run_batch(
    items: list[Item],
    timeout: float,
    progress: bool = False,
    label: str = "running",
    stream: IO[str] | None = None,
) -> Summary:
    """Submit the valid items, wait for all of them, and summarise (items are updated).

    With ``progress``, done and failed counts, dollars so far, rate and ETA go to
    ``stream`` (stderr) as the results arrive (``progress.py``)."""
    from agentjobs.cli.progress import Progress

    t0 = time.monotonic()
    valid = sum(1 for i in items if i.kwargs is not None)
    shown = Progress(valid, label, stream) if progress and valid else None
    submit_all(items, on_sent=shown.on_sent if shown else lambda _: None)
    if shown is not None:
        # Refused at .delay() (a budget, a bad setting): a failure before it was sent.
        for item in items:
            if item.kwargs is not None and item.status == "FAILURE":
                shown.on_done(item)
    try:
        collect(items, timeout, on_done=shown.on_done if shown else lambda _: None)
    finally:
        if shown is not None:
            shown.close()
    return summarise(items, time.monotonic() - t0)

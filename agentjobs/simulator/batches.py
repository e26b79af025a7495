"""The Message Batches API: create, retrieve, list, cancel, delete, and the JSONL results.

A batch is ``in_progress`` for ``batch_processing_ms`` (simulated, times ``time_scale``)
and its entries finish evenly over that time, in request order; then it is ``ended``
with every entry tallied at once (the API's ``request_counts`` stay at ``processing``
until the whole batch ends). Entries that would finish past the 24 h limit expire, and
the batch ends at the limit. A cancel makes it ``canceling`` for ``batch_cancel_ms``,
then ``ended``: entries not finished when the cancel came are ``canceled``.

Entries are validated, planned and answered in ``batchentry``. Which entries expire or
error for the ``batch_*_share`` settings is drawn from ``seed``. Result lines
come in a shuffled order, as the API promises none.

Batches live in memory on the server's loop; ``/_sim/reset`` leaves them in place.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from agentjobs.simulator import batchentry
from agentjobs.simulator.apierror import ApiError, invalid, spend_limit_error
from agentjobs.simulator.batchentry import PATH, Entry
from agentjobs.simulator.state import Call, State

Inner = Callable[[web.Request, Call], Awaitable[dict[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ONE_PATH = PATH + "/{batch_id}"
#: A batch ends at the latest this many simulated seconds after it was created.
EXPIRY_S = 24 * 3600.0
RESULT_TYPES = ("succeeded", "errored", "canceled", "expired")
LIST_LIMIT_MAX = 1000


@dataclass
class Batch:
    seq: int
    id: str
    entries: list[Entry]
    created_at: float  # wall clock, for the timestamps the API shows
    created_sim: float  # simulated clock, for what has finished by when
    rng: random.Random
    status: str = "in_progress"
    cancel_initiated_at: float | None = None
    ended_at: float | None = None
    counts: dict[str, int] = field(default_factory=dict)
    results: bytes | None = None
    timer: asyncio.TimerHandle | None = None

    def render(self, origin: str) -> dict[str, Any]:
        """The MessageBatch object; ``origin`` (scheme://host) makes ``results_url``."""
        ended = self.status == "ended"
        counts = self.counts if ended else {"processing": len(self.entries)}
        return {
            "id": self.id,
            "type": "message_batch",
            "processing_status": self.status,
            "request_counts": {"processing": 0} | dict.fromkeys(RESULT_TYPES, 0) | counts,
            "created_at": _rfc3339(self.created_at),
            "expires_at": _rfc3339(self.created_at, plus_s=EXPIRY_S),
            "ended_at": _rfc3339(self.ended_at),
            "cancel_initiated_at": _rfc3339(self.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{origin}{PATH}/{self.id}/results" if ended else None,
        }


def _rfc3339(ts: float | None, plus_s: float = 0.0) -> str | None:
    if ts is None:
        return None
    # Added after the conversion, so that expires_at is exactly 24 h after created_at.
    at = datetime.fromtimestamp(ts, UTC) + timedelta(seconds=plus_s)
    return at.isoformat().replace("+00:00", "Z")


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


@runtime_checkable
class Http(Protocol):
    """The HTTP plumbing of ``server.Simulator`` these routes share (credentials, error
    answers, counters, the log line); described here because the server imports this
    module, not the other way round."""

    def _wrap(self, path: str, inner: Inner) -> Handler: ...

    def _authenticate(self, request: web.Request) -> None: ...

    def _log(self, call: Call, status: int, error_type: str | None, started: float) -> None: ...


class Batches:
    """The batches of one simulator, and the handlers of their routes."""

    def __init__(self, sim: State, http: Http) -> None:
        self.sim, self.http = sim, http
        self._batches: dict[str, Batch] = {}
        self._seq = 0
        self._prefix = "msgbatch_sim" + secrets.token_hex(4)

    def register(self, app: web.Application) -> None:
        wrap = self.http._wrap
        app.router.add_post(PATH, wrap(PATH, self._create))
        app.router.add_get(PATH, wrap(PATH, self._list))
        app.router.add_get(ONE_PATH, wrap(ONE_PATH, self._retrieve))
        app.router.add_delete(ONE_PATH, wrap(ONE_PATH, self._delete))
        app.router.add_post(ONE_PATH + "/cancel", wrap(ONE_PATH + "/cancel", self._cancel))
        app.router.add_get(ONE_PATH + "/results", self._results)
        app.on_cleanup.append(self._stop_timers)

    async def _stop_timers(self, app: web.Application) -> None:
        for batch in self._batches.values():
            if batch.timer is not None:
                batch.timer.cancel()

    # -- routes -----------------------------------------------------------------------

    async def _create(self, request: web.Request, call: Call) -> dict[str, Any]:
        sim = self.sim
        self.http._authenticate(request)
        body = await self._read_json(request)
        config = sim.config
        if config.spend_limit_usd is not None and sim.stats.cost_usd >= config.spend_limit_usd:
            raise spend_limit_error()
        entries = batchentry.entries(body, config.batch_max_requests)
        self._seq += 1
        seed = config.seed
        rng = random.Random(None if seed is None else f"{seed}:{self._seq}")
        batch = Batch(
            self._seq,
            f"{self._prefix}{self._seq:010x}",
            entries,
            time.time(),
            sim.clock(),
            rng,
        )
        batchentry.plan(sim, entries, rng)
        self._batches[batch.id] = batch
        sim.stats.batches += 1
        sim.stats.batch_requests += len(entries)
        end_s = min(config.batch_processing_ms / 1000.0, EXPIRY_S)
        batch.timer = asyncio.get_running_loop().call_later(
            end_s * sim.clock.scale, self._end, batch, None
        )
        return batch.render(_origin(request))

    async def _retrieve(self, request: web.Request, call: Call) -> dict[str, Any]:
        self.http._authenticate(request)
        return self._get(request).render(_origin(request))

    async def _list(self, request: web.Request, call: Call) -> dict[str, Any]:
        self.http._authenticate(request)
        query = request.query
        raw_limit = query.get("limit", "20")
        try:
            limit = int(raw_limit)
        except ValueError:
            raise invalid("limit: Input should be a valid integer") from None
        if not 1 <= limit <= LIST_LIMIT_MAX:
            raise invalid(f"limit: Input should be between 1 and {LIST_LIMIT_MAX}")
        before, after = query.get("before_id"), query.get("after_id")
        if before and after:
            raise invalid("before_id and after_id cannot be used together")
        newest_first = sorted(self._batches.values(), key=lambda b: -b.seq)
        if after:
            cursor = self._cursor(after, "after_id")
            older = [b for b in newest_first if b.seq < cursor]
            page, has_more = older[:limit], len(older) > limit
        elif before:
            cursor = self._cursor(before, "before_id")
            newer = [b for b in newest_first if b.seq > cursor]
            page, has_more = newer[-limit:], len(newer) > limit
        else:
            page, has_more = newest_first[:limit], len(newest_first) > limit
        origin = _origin(request)
        return {
            "data": [b.render(origin) for b in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }

    async def _cancel(self, request: web.Request, call: Call) -> dict[str, Any]:
        sim = self.sim
        self.http._authenticate(request)
        batch = self._get(request)
        if batch.status == "ended":
            raise invalid(f"Batch {batch.id} has already ended and cannot be canceled.")
        if batch.status == "in_progress":
            batch.status = "canceling"
            batch.cancel_initiated_at = time.time()
            if batch.timer is not None:
                batch.timer.cancel()
            cutoff_s = sim.clock() - batch.created_sim
            delay = sim.config.batch_cancel_ms / 1000.0 * sim.clock.scale
            batch.timer = asyncio.get_running_loop().call_later(delay, self._end, batch, cutoff_s)
        return batch.render(_origin(request))

    async def _delete(self, request: web.Request, call: Call) -> dict[str, Any]:
        self.http._authenticate(request)
        batch = self._get(request)
        if batch.status != "ended":
            raise invalid(
                f"Batch {batch.id} cannot be deleted while it is {batch.status}; "
                "cancel it and wait for it to end first."
            )
        del self._batches[batch.id]
        return {"id": batch.id, "type": "message_batch_deleted"}

    async def _results(self, request: web.Request) -> web.StreamResponse:
        """JSONL, so not through the server's JSON wrapper; counted and logged as it does."""
        sim, started = self.sim, time.monotonic()
        call = Call(ONE_PATH + "/results", f"req_{secrets.token_hex(12)}")
        sim.stats.requests += 1
        status, error_type = 200, None
        try:
            self.http._authenticate(request)
            batch = self._get(request)
            if batch.results is None:
                raise invalid(f"Batch {batch.id} has not ended yet; its results are not ready.")
            response = web.Response(body=batch.results, content_type="application/binary")
        except ApiError as exc:
            status, error_type = exc.status, exc.type
            sim.stats.by_error_type[exc.type] += 1
            response = web.json_response(exc.body(call.request_id), status=exc.status)
        sim.stats.by_status[str(status)] += 1
        self.http._log(call, status, error_type, started)
        response.headers["request-id"] = call.request_id
        return response

    # -- helpers ----------------------------------------------------------------------

    def _get(self, request: web.Request) -> Batch:
        batch_id = request.match_info["batch_id"]
        batch = self._batches.get(batch_id)
        if batch is None:
            raise ApiError(404, f"message_batch: {batch_id} not found")
        return batch

    def _cursor(self, batch_id: str, name: str) -> int:
        """The sequence number of a cursor id; ids sort by it, so a deleted one still works."""
        batch = self._batches.get(batch_id)
        if batch is not None:
            return batch.seq
        tail = batch_id.removeprefix(self._prefix)
        if tail == batch_id or not re.fullmatch(r"[0-9a-f]{10}", tail):
            raise invalid(f"{name}: {batch_id} is not a message batch id")
        return int(tail, 16)

    async def _read_json(self, request: web.Request) -> Any:
        """The body, up to ``batch_max_bytes`` (past the server's own, smaller, body limit)."""
        limit = self.sim.config.batch_max_bytes
        if request.content_length is not None and request.content_length > limit:
            # Read what the client sends first: one still writing would see a reset.
            while await request.content.readany():
                pass
            raise ApiError(413)
        chunks, size = [], 0
        async for chunk in request.content.iter_any():
            size += len(chunk)
            if size > limit:
                while await request.content.readany():
                    pass
                raise ApiError(413)
            chunks.append(chunk)
        try:
            return json.loads(b"".join(chunks))
        except ValueError as exc:
            raise invalid(f"Invalid JSON in request body: {exc}") from None

    def _end(self, batch: Batch, cancel_cutoff_s: float | None) -> None:
        """Finish every entry, tally them and write the results; the batch is ended."""
        batch.timer = None
        counts = dict.fromkeys(RESULT_TYPES, 0)
        lines = []
        for i, entry in enumerate(batch.entries):
            if cancel_cutoff_s is not None and entry.due_s > cancel_cutoff_s:
                kind, result = "canceled", {"type": "canceled"}
            elif entry.due_s > EXPIRY_S:
                kind, result = "expired", {"type": "expired"}
            else:
                request_id = f"req_{batch.id[len(self._prefix) :]}{i:06x}"
                kind, result = batchentry.finish(
                    self.sim, entry, request_id, batch.id, batch.created_at
                )
            counts[kind] += 1
            lines.append(json.dumps({"custom_id": entry.custom_id, "result": result}) + "\n")
        batch.rng.shuffle(lines)
        batch.results = "".join(lines).encode()
        batch.counts = counts
        batch.status = "ended"
        batch.ended_at = time.time()
        self.sim.stats.batch_results.update(counts)
        # Only the results are served from now on: let the requests go.
        batch.entries = []


def register(sim: State, app: web.Application) -> None:
    """Add the batches routes of ``sim``, the server's Simulator, to ``app`` (before its
    catch-all 404)."""
    assert isinstance(sim, Http), "the routes need the server's HTTP plumbing"
    Batches(sim, sim).register(app)

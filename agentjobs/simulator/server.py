"""The aiohttp application: the Messages API, count_tokens and the ``/_sim`` admin routes.

Order of checks for ``POST /v1/messages`` (each may end the request):
credentials (401) -> body size (413) -> JSON and fields (400, 404 for the model) ->
directives (forced error or fault) -> random fault (529, 500, drop, slow) ->
spend cap (429 enforced_spend_limit_reached) -> rate limits (429 with retry-after) ->
prompt cache -> the answer, paced (as one JSON body, or as server-sent events for
``stream: true``). Every answer carries ``request-id``; every answer to a request whose
model is known also carries the ``anthropic-ratelimit-*`` headers.

All state lives on the event loop's thread: handlers never block and need no locks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from aiohttp import web

from agentjobs.simulator import batches, textgen, validation
from agentjobs.simulator.answer import answer, rate_message, request_digest
from agentjobs.simulator.apierror import ApiError, invalid
from agentjobs.simulator.config import SimConfig
from agentjobs.simulator.state import Call, Dropped, State
from agentjobs.simulator.streaming import Stream

logger = logging.getLogger(__name__)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _lone_surrogate(body: Any) -> bool:
    """Whether a string in ``body`` holds half a surrogate pair (not encodable as UTF-8)."""
    try:
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class Simulator(State):
    """One simulated Anthropic organisation served over HTTP."""

    def __init__(self, config: SimConfig | None = None) -> None:
        super().__init__(config)
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._flusher: asyncio.Task[None] | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body_bytes + 1)
        app.router.add_post("/v1/messages", self._wrap("/v1/messages", self._messages))
        app.router.add_post(
            "/v1/messages/count_tokens", self._wrap("/v1/messages/count_tokens", self._count)
        )
        app.router.add_get("/_sim/health", self._health)
        app.router.add_get("/_sim/stats", self._stats)
        app.router.add_post("/_sim/reset", self._reset)
        app.router.add_get("/_sim/config", self._config)
        app.router.add_post("/_sim/config", self._config)
        batches.register(self, app)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        app.on_startup.append(self._start_flusher)
        app.on_cleanup.append(self._stop_flusher)
        return app

    async def _start_flusher(self, app: web.Application) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _stop_flusher(self, app: web.Application) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self.log.close()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.log.flush()

    # -- request plumbing ----------------------------------------------------------

    def _wrap(
        self,
        path: str,
        inner: Callable[[web.Request, Call], Awaitable[dict[str, Any] | Stream]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            call = Call(path, f"req_{self._id_prefix}{next(self._ids):016x}")
            stats = self.stats
            stats.requests += 1
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            status, error_type = 200, None
            response: web.StreamResponse
            try:
                payload = await inner(request, call)
                if isinstance(payload, Stream):
                    # Headers go out first; the stream ends before this handler does,
                    # so in_flight and the log's latency cover the whole answer.
                    return await payload.write(request, self._headers(path, call))
                response = web.Response(
                    body=json.dumps(payload).encode(), content_type="application/json"
                )
            except Dropped:
                # The transport is already aborted: aiohttp drops whatever we return.
                status = 0
                response = web.Response(status=500)
            except Exception as exc:
                if not isinstance(exc, ApiError):
                    # A simulator bug must still look like the API: a JSON 500.
                    logger.exception("simulator: unexpected error in %s", path)
                    exc = ApiError(500)
                status, error_type = exc.status, exc.type
                response = web.Response(
                    status=status,
                    body=json.dumps(exc.body(call.request_id)).encode(),
                    content_type="application/json",
                )
                if exc.retry_after_s is not None:
                    response.headers["retry-after"] = str(exc.retry_after_s)
                if status == 429:
                    stats.rate_limited += 1
            finally:
                stats.in_flight -= 1
                stats.by_status["dropped" if status == 0 else str(status)] += 1
                if call.group:
                    stats.by_group[call.group] += 1
                if error_type:
                    stats.by_error_type[error_type] += 1
                self._log(call, status, error_type, started)
            response.headers.update(self._headers(path, call))
            return response

        return handler

    def _headers(self, path: str, call: Call) -> dict[str, str]:
        headers = {"request-id": call.request_id}
        if call.group is not None:
            headers.update(
                self.limits.headers(call.group)
                if path == "/v1/messages"
                else self.limits.count_tokens_headers()
            )
        if call.digest is not None:
            headers["x-sim-hash"] = call.digest
        return headers

    def _log(self, call: Call, status: int, error_type: str | None, started: float) -> None:
        if self.log.path is None:
            return
        usage = call.usage or {}
        self.log.append(
            {
                "ts": round(time.time(), 3),
                "request_id": call.request_id,
                "path": call.path,
                "model": call.model,
                "group": call.group,
                "status": status if status else None,
                "error_type": error_type,
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "latency_ms": round((time.monotonic() - started) * 1000, 2),
                "hash": call.digest,
                "fault": call.fault,
            }
        )

    def _authenticate(self, request: web.Request) -> None:
        key = request.headers.get("x-api-key")
        if not key:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        if not key:
            raise ApiError(401, "x-api-key header is required")
        if self.config.api_key is not None and key != self.config.api_key:
            raise ApiError(401, "invalid x-api-key")

    async def _body(self, request: web.Request) -> tuple[bytes, Any]:
        limit = self.config.max_body_bytes
        length = request.content_length
        if length is not None and length > limit:
            # Read what the client sends before answering: a client still writing its
            # body would see a reset connection instead of the 413.
            while await request.content.readany():
                pass
            raise ApiError(413)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise ApiError(413) from None
        if len(raw) > limit:
            raise ApiError(413)
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise invalid(f"Invalid JSON in request body: {exc}") from None
        except RecursionError:
            raise invalid("Invalid JSON in request body: nested too deeply") from None
        if _SURROGATE_ESCAPE.search(raw) and _lone_surrogate(body):
            # JSON may escape a lone UTF-16 half; the API takes text as UTF-8 and refuses.
            raise invalid(
                "Invalid JSON in request body: lone surrogate in a string (not valid Unicode)"
            )
        return raw, body

    # -- the API -------------------------------------------------------------------

    async def _messages(self, request: web.Request, call: Call) -> dict[str, Any] | Stream:
        self.stats.messages += 1
        self._authenticate(request)
        raw, body = await self._body(request)
        parsed = validation.parse(body, with_cache=b"cache_control" in raw)
        config = self.config
        call.model, call.group = parsed.model.id, parsed.model.group
        call.digest = request_digest(parsed, body)
        self.stats.calls_by_hash[call.digest] += 1
        directives: dict[str, str] = {}
        if b"[[sim:" in raw:
            try:
                directives = textgen.directives(raw.decode())
            except ValueError as exc:
                raise invalid(str(exc)) from None
        return await answer(self, request, call, parsed, directives, config)

    async def _count(self, request: web.Request, call: Call) -> dict[str, Any]:
        self.stats.count_tokens += 1
        self._authenticate(request)
        raw, body = await self._body(request)
        parsed = validation.parse(body, count_only=True, with_cache=b"cache_control" in raw)
        call.model, call.group = parsed.model.id, parsed.model.group
        refusal = self.limits.admit_count_tokens()
        if refusal is not None:
            self.stats.rate_limited_by_dimension["count_tokens"] += 1
            raise ApiError(
                429,
                rate_message(self.limits.shown(refusal)),
                retry_after_s=self.limits.retry_after(refusal),
            )
        return {"input_tokens": parsed.input_tokens}

    # -- admin ---------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _stats(self, request: web.Request) -> web.Response:
        hashes = request.query.get("hashes", "") not in ("", "0", "false")
        return web.json_response(self.stats.snapshot(hashes=hashes))

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _config(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise ValueError("body must be a JSON object of settings")
                self.configure(**changes)
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.config))

    async def _not_found(self, request: web.Request) -> web.Response:
        err = ApiError(404, f"{request.method} {request.path} not found")
        return web.json_response(err.body("req_none"), status=404)

"""``stream: true``: the answer as server-sent events, paced as it is generated.

The API's event sequence: ``message_start`` (the message with empty content and the
input usage), a ``ping``, then per block ``content_block_start``, deltas
(``text_delta``, ``input_json_delta``, ``thinking_delta`` then one
``signature_delta``), ``content_block_stop``; ``message_delta`` (stop reason and
cumulative usage), ``message_stop``. Deltas carry what ~50 ms of output holds (at
least one token); more pings come during waits longer than ``PING_EVERY_S``. Output
tokens are debited from the OTPM bucket as their deltas go out. A stream-error fault
sends an ``overloaded_error`` event half-way and ends the stream, after the 200.
A client that goes away stops the generation: what was not sent is not debited.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from aiohttp import web

from agentjobs.simulator.compose import Reply
from agentjobs.simulator.pacing import Pace

#: Real seconds of output one delta carries, when paced.
DELTA_S = 0.05
#: Tokens per delta when output is not paced (zero-latency setups): few, large events.
UNPACED_DELTA_TOKENS = 512
PING_EVERY_S = 5.0
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    """A block as ``content_block_start`` announces it."""
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if kind == "tool_use":
        return {**block, "input": {}}
    return block


def _pieces(
    block: dict[str, Any], tokens: int, per: int
) -> Iterator[tuple[dict[str, Any] | None, int]]:
    """(delta, tokens) pairs that add up to the block's text and ``tokens``; the delta is
    None where a piece has no text (thinking not displayed still takes its time)."""
    kind = block["type"]
    if kind == "text":
        text, delta, field = block["text"], "text_delta", "text"
    elif kind == "thinking":
        text, delta, field = block["thinking"], "thinking_delta", "thinking"
    elif kind == "tool_use":
        text = json.dumps(block["input"], separators=(",", ":"))
        delta, field = "input_json_delta", "partial_json"
    else:
        return
    n = max(1, -(-tokens // per)) if tokens else 1
    for p in range(n):
        lo = 4 * per * p
        hi = len(text) if p == n - 1 else 4 * per * (p + 1)
        k = tokens - per * (n - 1) if p == n - 1 else per
        piece = text[lo:hi]
        yield ({"type": delta, field: piece} if piece else None), k


class Stream:
    """A streamed answer, written once the server has set the response headers."""

    def __init__(
        self,
        message: dict[str, Any],
        reply: Reply,
        pace: Pace,
        debit: Callable[[int], None],
        release: Callable[[], None],
        fail_after: int | None = None,
    ) -> None:
        self.message = message
        self.reply = reply
        self.pace = pace
        self.debit = debit
        self.release = release
        #: Output tokens after which an overloaded_error event ends the stream.
        self.fail_after = fail_after
        self._buffer: list[bytes] = []
        self._response: web.StreamResponse | None = None

    async def write(self, request: web.Request, headers: dict[str, str]) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers=headers)
        response.content_type = "text/event-stream"
        response.headers["cache-control"] = "no-cache"
        self._response = response
        await response.prepare(request)
        try:
            await self._events()
            await self._flush()
            await response.write_eof()
        except ConnectionResetError:
            pass  # the client went away: the generation stops with it
        finally:
            self.release()
        return response

    async def _flush(self) -> None:
        if self._buffer and self._response is not None:
            data, self._buffer = b"".join(self._buffer), []
            await self._response.write(data)

    async def _wait_until(self, deadline: float) -> None:
        """Flush, then sleep until ``deadline`` (monotonic), pinging on long waits."""
        await self._flush()
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, PING_EVERY_S))
            if deadline - time.monotonic() > 0 and self.pace.pings and self._response:
                await self._response.write(_PING)

    async def _events(self) -> None:
        message, reply, pace = self.message, self.reply, self.pace
        usage = message["usage"]
        start = {k: v for k, v in message.items() if k != "stop_details"}
        start.update(content=[], stop_reason=None, stop_sequence=None)
        start["usage"] = {**usage, "output_tokens": min(1, reply.output_tokens)}
        self._buffer.append(event("message_start", {"type": "message_start", "message": start}))
        self._buffer.append(_PING)
        began = time.monotonic() + pace.first_s
        if pace.first_s > 0:
            await self._wait_until(began)
        per = (
            max(1, round(DELTA_S / pace.per_token_s)) if pace.per_token_s else UNPACED_DELTA_TOKENS
        )
        sent = 0
        for index, (block, tokens) in enumerate(zip(reply.content, reply.tokens, strict=True)):
            self._buffer.append(
                event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": _empty(block)},
                )
            )
            for delta, k in _pieces(block, tokens, per):
                if self.fail_after is not None and sent + k > self.fail_after:
                    error = {"type": "overloaded_error", "message": "Overloaded"}
                    self._buffer.append(event("error", {"type": "error", "error": error}))
                    return
                if pace.per_token_s:
                    await self._wait_until(began + (sent + k) * pace.per_token_s)
                if delta is not None:
                    body = {"type": "content_block_delta", "index": index, "delta": delta}
                    self._buffer.append(event("content_block_delta", body))
                self.debit(k)
                sent += k
            if block["type"] == "thinking":
                signature = {"type": "signature_delta", "signature": block["signature"]}
                body = {"type": "content_block_delta", "index": index, "delta": signature}
                self._buffer.append(event("content_block_delta", body))
            stop = {"type": "content_block_stop", "index": index}
            self._buffer.append(event("content_block_stop", stop))
        stop_fields: dict[str, Any] = {
            "stop_reason": message["stop_reason"],
            "stop_sequence": message["stop_sequence"],
        }
        if message.get("stop_details") is not None:
            stop_fields["stop_details"] = message["stop_details"]
        final_usage = {k: usage[k] for k in _DELTA_USAGE if k in usage}
        body = {"type": "message_delta", "delta": stop_fields, "usage": final_usage}
        self._buffer.append(event("message_delta", body))
        self._buffer.append(event("message_stop", {"type": "message_stop"}))


_DELTA_USAGE = (
    "input_tokens",
    "cache_creation_input_tokens",
    "cache_read_input_tokens",
    "output_tokens",
)

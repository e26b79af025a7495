"""The streamed Messages API call: one answer read as server-sent events.

Why a stream: a plain request must be given a read timeout longer than the slowest
answer it may carry, and an answer's length is only bounded by ``max_tokens`` (a
32,000-token answer at 60 tokens/s takes nine minutes). A timeout shorter than that
gives up after the API has done, and billed, the work, and the retry pays for it again.
A stream instead shows progress: the API sends an event per token and pings while it
thinks, so a dead connection is told from a slow answer by the silence between events
(``AGENTJOBS_STREAM_IDLE_TIMEOUT_S``, httpx's read timeout, which is per read), and
the total is bounded by a budget derived from the call's own ``max_tokens``
(:func:`total_budget_s`), so every ``max_tokens`` a model allows works with the default
settings.

The SDK's ``messages.stream`` assembles the final ``Message`` exactly as the
non-streaming call returns it (every block, signatures, usage), and its ``response``
gives the headers the limiter settles with. What the SDK leaves raw is wrapped here: a
connection that drops or stalls mid-stream raises httpx's own exception during the
iteration, which becomes the SDK's ``APIConnectionError`` / ``APITimeoutError``, as it
would before the 200. An ``error`` event after the 200 is raised by the SDK as an
``APIStatusError`` with status 200 and the error's ``type``; reliability/retry.py
classifies it by that type (``overloaded_error`` as a 529).
"""

from __future__ import annotations

import functools
import inspect
import time
from dataclasses import dataclass
from typing import Any

import anthropic

try:  # anthropic >= 2 is built on httpx2; older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

from agentjobs.settings import Settings


@dataclass(frozen=True)
class Streamed:
    """A streamed answer: the final message, the response headers, and its pace."""

    message: anthropic.types.Message
    headers: httpx.Headers
    #: Seconds from sending the request to the first content delta (None: no content).
    ttft_s: float | None
    #: Output tokens per second from the first content delta to the end (None: too
    #: few events to tell).
    output_tokens_per_s: float | None


def total_budget_s(max_tokens: int, s: Settings) -> float:
    """The longest a call may take (``Settings.call_timeout_s``)."""
    return s.call_timeout_s(max_tokens)


@functools.cache
def _stream_params() -> frozenset[str]:
    """Keyword arguments the installed SDK's ``messages.stream`` accepts."""
    from anthropic.resources.messages import Messages

    return frozenset(inspect.signature(Messages.stream).parameters)


def stream_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as ``messages.stream`` kwargs: fields it has no argument for
    (``temperature``, ``top_p``, ``top_k`` in recent SDKs) travel in ``extra_body``, so
    the request body is the same as the plain call's."""
    known = _stream_params()
    kwargs = {k: v for k, v in params.items() if k in known and k != "stream"}
    extra = {k: v for k, v in params.items() if k not in known and k != "stream"}
    if extra:
        kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
    return kwargs


def stream_message(
    client: anthropic.Anthropic,
    params: dict[str, Any],
    s: Settings,
    clock: Any = time.monotonic,
) -> Streamed:
    """Send ``params`` as a stream and read it to the end (see the module doc)."""
    max_tokens = int(params.get("max_tokens") or 0)
    budget = total_budget_s(max_tokens, s)
    timeout = httpx.Timeout(s.stream_idle_timeout_s, connect=s.connect_timeout_s)
    t0 = clock()
    deadline = t0 + budget
    first: float | None = None
    last = t0
    request: Any = None
    try:
        with client.messages.stream(**stream_kwargs(params), timeout=timeout) as stream:
            request = stream.response.request
            headers = stream.response.headers
            for event in stream:
                now = clock()
                if event.type == "content_block_delta":
                    if first is None:
                        first = now
                    last = now
                if now > deadline:
                    raise anthropic.APITimeoutError(request=request)
            message = stream.get_final_message()
    except httpx.TimeoutException as exc:
        raise anthropic.APITimeoutError(request=request or exc.request) from exc
    except httpx.TransportError as exc:  # dropped mid-stream: the SDK lets httpx's through
        raise anthropic.APIConnectionError(request=request or exc.request) from exc
    ttft = None if first is None else first - t0
    rate = None
    if first is not None and last > first:
        # The first delta's tokens arrived with it: the rate is over the ones after.
        rate = max(0, message.usage.output_tokens - 1) / (last - first)
    return Streamed(message, headers, ttft, rate)

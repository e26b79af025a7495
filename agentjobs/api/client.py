"""One Anthropic client per worker process, and the raw call.

The SDK's own retries are off (``max_retries=0``): agentjobs' retry policy is the only
retry loop, so every attempt is seen by the limiter, the metrics and the dead-letter
record. ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` are read by the SDK itself,
so the simulator, a proxy or the real API are one setting apart.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import socket
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import anthropic

try:  # anthropic >= 2 is built on httpx2; older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

from agentjobs import store
from agentjobs.api.events import api_call_finished, api_call_started
from agentjobs.api.stream import stream_message
from agentjobs.errors import ConfigurationError, UnknownModelError
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cache_ttl, cost_usd, usage_of
from agentjobs.settings import get_settings
from agentjobs.telemetry import genai, trace

log = logging.getLogger(__name__)

#: An API key stand-in for a local simulator, which accepts any key.
_LOCAL_KEY = "sk-ant-local-simulator"
_DEFAULT_BASE_URL = "https://api.anthropic.com"


@dataclass(frozen=True)
class RawResponse:
    """One answer: the parsed message, its headers, and its usage and cost read once."""

    message: anthropic.types.Message
    headers: httpx.Headers
    latency_ms: float
    request_id: str | None
    usage: Usage
    cost_usd: float
    #: Seconds to the first content token, and output tokens per second after it, of
    #: a streamed call (None for a plain one, or an answer without content).
    ttft_s: float | None = None
    output_tokens_per_s: float | None = None


def _is_local(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("127.0.0.1", "localhost", "::1")


def credential() -> str:
    """The secret the client authenticates with: the API key, else the auth token, else
    the simulator stand-in (which ``_build`` uses only for a local or simulator URL)."""
    return (
        os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN") or _LOCAL_KEY
    )


@dataclass(frozen=True)
class Target:
    """Where the client's calls go and how they authenticate."""

    base_url: str
    #: The variable ``base_url`` came from, for messages (or "default").
    source: str
    api_key: str | None
    auth_token: str | None

    @property
    def stand_in(self) -> bool:
        """No real credentials: a simulator, which accepts the stand-in key."""
        return self.api_key == _LOCAL_KEY


def target() -> Target:
    """The API the client calls, from ``ANTHROPIC_*`` and ``AGENTJOBS_SIM_URL``; raises
    ConfigurationError when no call could succeed (no credentials for a remote API, a
    URL that is not http(s))."""
    s = get_settings()
    # An empty variable (compose's `${VAR:-}`) means unset, as it does for a shell user.
    key = os.environ.get("ANTHROPIC_API_KEY") or None
    token = os.environ.get("ANTHROPIC_AUTH_TOKEN") or None
    base_url, source = os.environ.get("ANTHROPIC_BASE_URL") or None, "ANTHROPIC_BASE_URL"
    if not key and not token and base_url is None and s.sim_url:
        base_url, source = s.sim_url, "AGENTJOBS_SIM_URL"
    if base_url is None:
        # Unset or empty: the real API (the SDK would take an empty variable as the URL).
        base_url, source = _DEFAULT_BASE_URL, "default"
    _check_url(base_url, source)
    if not key and not token:
        if not (_is_local(base_url) or base_url == s.sim_url):
            raise ConfigurationError(
                "no Anthropic credentials: set ANTHROPIC_API_KEY for the real API, or "
                "ANTHROPIC_BASE_URL=http://127.0.0.1:8788 to use `agentjobs sim`"
            )
        key = _LOCAL_KEY
    return Target(base_url, source, key, token)


def _check_url(url: str, source: str) -> None:
    try:
        parsed = httpx.URL(url)
    except Exception:  # httpx.InvalidURL, or a TypeError for odd input
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(
            f"{source}={url!r} is not an http(s) URL (e.g. http://127.0.0.1:8788)"
        )


def preflight(wait_s: float | None = None) -> Target:
    """Check, before a worker takes tasks, that its calls can succeed at all.

    Raises ConfigurationError for what would dead-letter every task: no credentials for
    a remote API, a malformed URL, or, without credentials, no simulator listening at
    the URL within ``wait_s`` (default AGENTJOBS_CONNECT_TIMEOUT_S: a simulator started
    alongside, as compose does, has that long to listen). With credentials an API that
    cannot be reached now is only a warning: it may come back, and calls are retried.
    The probe is a TCP connect, no request: nothing is billed or counted.
    """
    t = target()
    timeout = get_settings().connect_timeout_s
    error = _unreachable(t.base_url, timeout, timeout if wait_s is None else wait_s)
    if error is None:
        return t
    if t.stand_in:
        where = "" if t.source == "ANTHROPIC_BASE_URL" else f" ({t.source})"
        raise ConfigurationError(
            f"no ANTHROPIC_API_KEY or ANTHROPIC_AUTH_TOKEN, and no simulator answers at "
            f"{t.base_url}{where}: {error}; set ANTHROPIC_API_KEY for the real API, or "
            "start the simulator (`agentjobs sim --port 8788`)"
        )
    log.warning(
        "the Anthropic API at %s cannot be reached now (%s): calls will be retried",
        t.base_url,
        error,
    )
    return t


def _unreachable(url: str, connect_timeout_s: float, wait_s: float) -> str | None:
    """Why nothing accepts a TCP connection at ``url`` (trying until ``wait_s`` is
    spent), or None when something does, or when a proxy would carry the call."""
    parsed = httpx.URL(url)
    host = parsed.host
    if urllib.request.getproxies().get(parsed.scheme) and not urllib.request.proxy_bypass(host):
        return None  # the proxy, not us, connects to the API
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.create_connection((host, port), timeout=connect_timeout_s).close()
            return None
        except OSError as exc:
            error = exc.strerror or str(exc) or type(exc).__name__
        if time.monotonic() >= deadline:
            return error
        time.sleep(0.2)


@store.per_process
def _build() -> anthropic.Anthropic:
    s = get_settings()
    t = target()
    limits = httpx.Limits(
        max_connections=s.http_max_connections,
        max_keepalive_connections=s.http_max_connections,
    )
    return anthropic.Anthropic(
        api_key=t.api_key,
        auth_token=t.auth_token,
        base_url=t.base_url,
        max_retries=0,
        timeout=httpx.Timeout(s.request_timeout_s, connect=s.connect_timeout_s),
        http_client=httpx.Client(limits=limits),
        **_sdk_spans_off(),
    )


def _sdk_spans_off() -> dict[str, Any]:
    """SDKs with spans of their own (anthropic >= 2.x) have them off: agentjobs' call span
    (``create_message``) is the one, on every SDK version; two would count tokens twice."""
    if "open_telemetry" in inspect.signature(anthropic.Anthropic.__init__).parameters:
        return {"open_telemetry": False}
    return {}


def get_client() -> anthropic.Anthropic:
    """The process's client; rebuilt after a fork (a pooled connection is not fork-safe)."""
    return _build()


def reset_client() -> None:
    """Drop the cached client (tests that change the environment call this)."""
    _build.reset()


@functools.cache
def _sdk_params() -> frozenset[str]:
    """Keyword arguments the installed SDK's ``messages.create`` accepts."""
    from anthropic.resources.messages import Messages

    return frozenset(inspect.signature(Messages.create).parameters)


def sdk_kwargs(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as ``create`` kwargs: fields this SDK has no argument for (recent SDKs
    dropped ``temperature``) travel in ``extra_body``, so the request body is the same."""
    known = _sdk_params()
    kwargs = {k: v for k, v in params.items() if k in known}
    extra = {k: v for k, v in params.items() if k not in known}
    if extra:
        kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
    return kwargs


def create_message(params: dict[str, Any]) -> RawResponse:
    """POST /v1/messages with the response headers (the limiter reads them): streamed
    (api/stream.py) from AGENTJOBS_STREAM_FROM_MAX_TOKENS up, else one plain request;
    either way bounded by ``Settings.call_timeout_s(max_tokens)``."""
    s = get_settings()
    streamed = s.stream and int(params.get("max_tokens") or 0) >= s.stream_from_max_tokens
    # A client span per call (telemetry/genai.py: gen_ai.* attributes, never the text),
    # under the task's span; a no-op without OpenTelemetry.
    with trace.span(
        genai.span_name(params),
        kind="client",
        **genai.request_attributes(params, streamed=streamed),
    ):
        try:
            raw = _create_message(params)
        except Exception as exc:
            trace.set_attributes(**genai.error_attributes(exc))
            raise
        trace.set_attributes(**genai.response_attributes(raw.message, raw.usage, raw.cost_usd))
        return raw


def _create_message(params: dict[str, Any]) -> RawResponse:
    # Metrics (signals.py) see every call and its answer, whoever made it.
    call_id = uuid.uuid4().hex
    api_call_started.send(sender=None, call_id=call_id, params=params)
    s = get_settings()
    t0 = time.perf_counter()
    ttft_s: float | None = None
    rate: float | None = None
    try:
        max_tokens = int(params.get("max_tokens") or 0)
        if s.stream and max_tokens >= s.stream_from_max_tokens:
            streamed = stream_message(get_client(), params, s)
            message, headers = streamed.message, streamed.headers
            ttft_s, rate = streamed.ttft_s, streamed.output_tokens_per_s
        else:
            # A short answer in one request, given as long as a stream of it would be:
            # never cut off before the API has finished (and billed) it.
            timeout = httpx.Timeout(s.call_timeout_s(max_tokens), connect=s.connect_timeout_s)
            raw = get_client().messages.with_raw_response.create(
                **sdk_kwargs(params), timeout=timeout
            )
            message, headers = raw.parse(), raw.headers
    except Exception as exc:
        latency_s = time.perf_counter() - t0
        api_call_finished.send(
            sender=None, call_id=call_id, params=params, latency_s=latency_s, error=exc
        )
        raise
    latency_ms = (time.perf_counter() - t0) * 1000.0
    usage = usage_of(message)
    usd = _price(params, usage)
    api_call_finished.send(
        sender=None,
        call_id=call_id,
        params=params,
        latency_s=latency_ms / 1000,
        message=message,
        usage=usage,
        cost_usd=usd,
        ttft_s=ttft_s,
        output_tokens_per_s=rate,
    )
    return RawResponse(
        message, headers, latency_ms, headers.get("request-id"), usage, usd, ttft_s, rate
    )


def _price(params: dict[str, Any], usage: Usage) -> float:
    try:
        return cost_usd(str(params.get("model")), usage, cache_ttl=cache_ttl(params))
    except UnknownModelError:  # a model the catalog does not price (refused at submit)
        return 0.0

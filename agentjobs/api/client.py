"""One Anthropic client per worker process, and the raw call.

The SDK's own retries are off (``max_retries=0``): agentjobs' retry policy is the only
retry loop, so every attempt is seen by the limiter, the metrics and the dead-letter
record. ``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` are read by the SDK itself,
so the simulator, a proxy or the real API are one setting apart.
"""

from __future__ import annotations

import functools
import inspect
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anthropic

try:  # anthropic >= 2 is built on httpx2; older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover - depends on the installed SDK
    import httpx  # type: ignore[no-redef]

from agentjobs.api.events import api_call_finished, api_call_started
from agentjobs.errors import ConfigurationError, UnknownModelError
from agentjobs.messages.result import Usage
from agentjobs.messages.usage import cache_ttl, cost_usd, usage_of
from agentjobs.settings import get_settings

_lock = threading.Lock()
_client: anthropic.Anthropic | None = None
_client_pid: int | None = None

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


def _is_local(url: str) -> bool:
    host = httpx.URL(url).host
    return host in ("127.0.0.1", "localhost", "::1")


def credential() -> str:
    """The secret the client authenticates with: the API key, else the auth token, else
    the simulator stand-in (which ``_build`` uses only for a local or simulator URL)."""
    return (
        os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN") or _LOCAL_KEY
    )


def _build() -> anthropic.Anthropic:
    s = get_settings()
    # An empty variable (compose's `${VAR:-}`) means unset, as it does for a shell user.
    key = os.environ.get("ANTHROPIC_API_KEY") or None
    token = os.environ.get("ANTHROPIC_AUTH_TOKEN") or None
    base_url = os.environ.get("ANTHROPIC_BASE_URL") or None
    if not key and not token:
        if base_url is None and s.sim_url:
            base_url = s.sim_url
        if base_url and (_is_local(base_url) or base_url == s.sim_url):
            key = _LOCAL_KEY
        else:
            raise ConfigurationError(
                "no Anthropic credentials: set ANTHROPIC_API_KEY for the real API, or "
                "ANTHROPIC_BASE_URL=http://127.0.0.1:8788 to use `agentjobs sim`"
            )
    limits = httpx.Limits(
        max_connections=s.http_max_connections,
        max_keepalive_connections=s.http_max_connections,
    )
    extra: dict[str, Any] = {}
    if base_url:
        extra["base_url"] = base_url
    elif "ANTHROPIC_BASE_URL" in os.environ:
        # Set but empty: the SDK would take "" as the URL; the real API is meant.
        extra["base_url"] = _DEFAULT_BASE_URL
    return anthropic.Anthropic(
        api_key=key,
        auth_token=token,
        max_retries=0,
        timeout=httpx.Timeout(s.request_timeout_s, connect=s.connect_timeout_s),
        http_client=httpx.Client(limits=limits),
        **extra,
    )


def get_client() -> anthropic.Anthropic:
    """The process's client; rebuilt after a fork (a pooled connection is not fork-safe)."""
    global _client, _client_pid
    pid = os.getpid()
    if _client is None or _client_pid != pid:
        with _lock:
            if _client is None or _client_pid != pid:
                _client = _build()
                _client_pid = pid
    return _client


def reset_client() -> None:
    """Drop the cached client (tests that change the environment call this)."""
    global _client
    with _lock:
        _client = None


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
    """POST /v1/messages with the raw response, so rate-limit headers are available."""
    # Metrics (signals.py) see every call and its answer, whoever made it.
    call_id = uuid.uuid4().hex
    api_call_started.send(sender=None, call_id=call_id, params=params)
    t0 = time.perf_counter()
    try:
        raw = get_client().messages.with_raw_response.create(**sdk_kwargs(params))
        message = raw.parse()
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
    )
    return RawResponse(message, raw.headers, latency_ms, raw.headers.get("request-id"), usage, usd)


def _price(params: dict[str, Any], usage: Usage) -> float:
    try:
        return cost_usd(str(params.get("model")), usage, cache_ttl=cache_ttl(params))
    except UnknownModelError:  # a model the catalog does not price (refused at submit)
        return 0.0

"""All ``AGENTJOBS_*`` settings, read once from the environment.

Every default is documented here and once in the README's settings table; nothing else
in the code reads ``os.environ`` for agentjobs settings. Tests build their own
``Settings(...)`` or set environment variables and call ``reset_settings()``.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentjobs.catalog import FAMILIES

# Anthropic's entry ("Start") tier for Claude 4.x models, per model class.
_START_RPM = 1_000
_START_ITPM = 2_000_000
_START_OTPM = 400_000


class GroupLimits(BaseSettings):
    """Limits of one rate-limit group (API key x model class)."""

    rpm: int
    itpm: int
    otpm: int
    concurrency: int


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTJOBS_", extra="ignore")

    # --- connections -------------------------------------------------------------
    #: Celery broker: Redis (default) or RabbitMQ (amqp://).
    broker_url: str = "redis://127.0.0.1:6379/0"
    #: Celery result backend; defaults to the state store (always Redis).
    result_backend: str | None = None
    #: The state store: limiter, idempotency, dead letters, cache, counters.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key agentjobs writes (several deployments can share a DB).
    key_prefix: str = "agentjobs"

    # --- tasks -------------------------------------------------------------------
    #: How long a result stays in the result backend (and the idempotency store).
    result_ttl_s: int = 86_400
    #: Redis broker visibility timeout: a message unacked this long is redelivered.
    #: 300 s is 10x the slowest normal call (30 s), so a live worker is never raced,
    #: while a killed worker's tasks come back within minutes, not the default hour.
    visibility_timeout_s: int = 300
    #: Default max_tokens when the caller gives none.
    default_max_tokens: int = 1024
    #: Largest accepted request body (the API's own limit is 32 MB).
    max_request_bytes: int = 32 * 1024 * 1024

    # --- Anthropic client --------------------------------------------------------
    #: Seconds to wait for a whole response (the SDK's read timeout). Celery time limits
    #: do not work in the threads pool, so this is what bounds a stuck call.
    request_timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    #: Max pooled HTTP connections per worker process.
    http_max_connections: int = 256

    # --- workers -----------------------------------------------------------------
    #: Default thread count of `agentjobs worker FAMILY` when no -c is given.
    worker_concurrency: int = 32

    # --- rate limits (per group; defaults are Anthropic's Start tier) ------------
    limit_haiku_rpm: int = _START_RPM
    limit_haiku_itpm: int = _START_ITPM
    limit_haiku_otpm: int = _START_OTPM
    limit_haiku_concurrency: int = 256
    limit_sonnet_rpm: int = _START_RPM
    limit_sonnet_itpm: int = _START_ITPM
    limit_sonnet_otpm: int = _START_OTPM
    limit_sonnet_concurrency: int = 256
    limit_opus_rpm: int = _START_RPM
    limit_opus_itpm: int = _START_ITPM
    limit_opus_otpm: int = _START_OTPM
    limit_opus_concurrency: int = 256
    #: Limiter burst: how many seconds of refill may be spent at once. Anthropic may
    #: enforce 60 RPM as one request per second, so a small burst avoids 429s.
    limiter_burst_s: float = Field(default=2.0, gt=0)
    #: A limiter wait longer than this goes back through the broker with a countdown
    #: instead of sleeping in the worker thread.
    limiter_max_sleep_s: float = Field(default=10.0, ge=0)

    @property
    def backend_url(self) -> str:
        return self.result_backend or self.redis_url

    def limits(self, group: str) -> GroupLimits:
        """The limits of one rate-limit group (``haiku``, ``sonnet`` or ``opus``)."""
        if group not in FAMILIES:
            raise ValueError(f"unknown rate-limit group {group!r}")
        return GroupLimits(
            rpm=getattr(self, f"limit_{group}_rpm"),
            itpm=getattr(self, f"limit_{group}_itpm"),
            otpm=getattr(self, f"limit_{group}_otpm"),
            concurrency=getattr(self, f"limit_{group}_concurrency"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests that change the environment call this)."""
    get_settings.cache_clear()

"""All ``AGENTJOBS_*`` settings, read once from the environment.

Every default is documented here, once: the ``#:`` comment above each field is its
description, and docs/settings.md is generated from this class (``python
scripts/settingsdoc.py``). Nothing else in the code reads ``os.environ`` for agentjobs
settings. Tests build their own
``Settings(...)`` or set environment variables and call ``reset_settings()``.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentjobs import catalog
from agentjobs.catalog import FAMILIES
from agentjobs.errors import ConfigurationError

# Anthropic's entry ("Start") tier for Claude 4.x models, per model class.
_START_RPM = 1_000
_START_ITPM = 2_000_000
_START_OTPM = 400_000


class GroupLimits(BaseModel):
    """Limits of one rate-limit group (API key x model class).

    A plain model, not settings: built from Settings' fields on every admission, and a
    BaseSettings would re-read the whole environment each time (~0.7 ms a call)."""

    rpm: int
    itpm: int
    otpm: int
    concurrency: int


class Policy(BaseModel):
    """How one queue retries: attempts, backoff and total time (seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Calls that may fail with an error before the task is dead-lettered (429s excluded).
    max_attempts: int = Field(default=5, ge=1)
    #: First backoff ceiling; the n-th retry waits uniform(0, min(max, base * 2**(n-1))).
    backoff_base_s: float = Field(default=1.0, ge=0)
    backoff_max_s: float = Field(default=60.0, ge=0)
    #: From the first attempt: no error retry is scheduled past this.
    max_total_s: float = Field(default=600.0, gt=0)
    #: From the first attempt: no 429 wait is scheduled past this.
    rate_limit_max_total_s: float = Field(default=3_600.0, gt=0)


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
    #: A live task holds its message for its call's bound (call_timeout_s: 125 s +
    #: max_tokens / 10 at the defaults) after waits of up to 100 s (an identical call,
    #: another copy's lease, the limiter); retry countdowns are capped at half of it. A
    #: call that outlives it is redelivered and the copy waits on the idempotency lease,
    #: never calling again: set it above 225 s + your largest max_tokens / 10 to avoid
    #: even that. A killed worker's tasks come back after it (about 5 minutes by
    #: default), not the broker's default hour. docs/reliability.md.
    visibility_timeout_s: int = 300
    #: Default max_tokens when the caller gives none.
    default_max_tokens: int = 1024
    #: Largest accepted request body (the API's own limit is 32 MB).
    max_request_bytes: int = 32 * 1024 * 1024

    # --- Anthropic client --------------------------------------------------------
    #: The SDK client's default read timeout, seconds, for calls other than messages
    #: (count_tokens, batches). A Messages call is bounded by its own total instead
    #: (call_timeout_s: the stream settings below), whether streamed or not.
    request_timeout_s: float = 120.0
    #: Seconds to wait for a connection to the API.
    connect_timeout_s: float = 5.0
    #: Stream calls of AGENTJOBS_STREAM_FROM_MAX_TOKENS and more (docs/streaming.md):
    #: bounded by the idle timeout between events as well as the call's total from its
    #: max_tokens. Off: every call one plain request, bounded by that total.
    stream: bool = True
    #: Longest silence on a stream, seconds (the API sends a ping at least every few
    #: seconds while it works, so this only trips on a stalled connection).
    stream_idle_timeout_s: float = Field(default=60.0, gt=0)
    #: A streamed call's total budget is this allowance for connecting and the first
    #: token (a long prompt, thinking) plus max_tokens at the slowest output rate below.
    stream_first_token_allowance_s: float = Field(default=120.0, gt=0)
    #: The slowest output rate, tokens per second, a streamed call is given time for
    #: (real models write 30-150): the rest of its total budget is max_tokens / this.
    stream_min_tokens_per_s: float = Field(default=10.0, gt=0)
    #: Calls with max_tokens below this are one plain request (no per-event parsing:
    #: about 10 ms less worker CPU a call), bounded by the same total as a stream; from
    #: it up they stream, so a dead connection shows within the idle timeout.
    stream_from_max_tokens: int = Field(default=4096, ge=1)
    #: Max pooled HTTP connections per worker process.
    http_max_connections: int = 256
    #: The simulator's URL (e.g. http://simulator:8788), used as the Anthropic base URL
    #: only while no ANTHROPIC_API_KEY / ANTHROPIC_AUTH_TOKEN is set: setting the key
    #: alone then switches a deployment to the real API.
    sim_url: str | None = None

    # --- workers -----------------------------------------------------------------
    #: Default thread count of `agentjobs worker FAMILY` when no -c is given.
    worker_concurrency: int = 32

    # --- rate limits (per group; defaults are Anthropic's Start tier) ------------
    #: Requests per minute of the Haiku rate-limit group.
    limit_haiku_rpm: int = _START_RPM
    #: Input tokens per minute of the Haiku group (cache reads do not count).
    limit_haiku_itpm: int = _START_ITPM
    #: Output tokens per minute of the Haiku group.
    limit_haiku_otpm: int = _START_OTPM
    #: Haiku calls in flight at once, all workers together (leases that expire).
    limit_haiku_concurrency: int = 256
    #: Requests per minute of the Sonnet rate-limit group.
    limit_sonnet_rpm: int = _START_RPM
    #: Input tokens per minute of the Sonnet group (cache reads do not count).
    limit_sonnet_itpm: int = _START_ITPM
    #: Output tokens per minute of the Sonnet group.
    limit_sonnet_otpm: int = _START_OTPM
    #: Sonnet calls in flight at once, all workers together (leases that expire).
    limit_sonnet_concurrency: int = 256
    #: Requests per minute of the Opus rate-limit group.
    limit_opus_rpm: int = _START_RPM
    #: Input tokens per minute of the Opus group (cache reads do not count).
    limit_opus_itpm: int = _START_ITPM
    #: Output tokens per minute of the Opus group.
    limit_opus_otpm: int = _START_OTPM
    #: Opus calls in flight at once, all workers together (leases that expire).
    limit_opus_concurrency: int = 256
    #: Limiter burst: how many seconds of refill may be spent at once. Anthropic may
    #: enforce 60 RPM as one request per second, so a small burst avoids 429s.
    limiter_burst_s: float = Field(default=2.0, gt=0)
    #: A limiter wait longer than this goes back through the broker with a countdown
    #: instead of sleeping in the worker thread.
    limiter_max_sleep_s: float = Field(default=10.0, ge=0)
    #: The global limiter (docs/limiter.md). Off: calls go out unthrottled and
    #: 429s are only retried (benchmark baselines, or a proxy that limits for you).
    limiter_enabled: bool = True
    #: Seconds of refill kept free on the server's side, judged from its
    #: anthropic-ratelimit-*-remaining headers: absorbs other clients of the same key and
    #: estimate errors; costs throughput only while the server shows less room than this.
    limiter_headroom_s: float = Field(default=0.5, ge=0)
    #: How the API counts output tokens: "realtime" (tokens actually generated; reserve
    #: a learned estimate) or "max_tokens" (older accounting: reserve max_tokens).
    limiter_otpm_mode: Literal["realtime", "max_tokens"] = "realtime"
    #: Characters per token of the input estimate before the per-group calibration,
    #: learned from real usage, takes over.
    limiter_chars_per_token: float = Field(default=3.5, gt=0)

    # --- cost control (docs/cost.md) ---------------------------------------------
    #: Response cache for calls that do not say `cache=`: "off", "deterministic"
    #: (only temperature=0 requests, whose answer is meant to be repeatable) or "on".
    cache_default: Literal["off", "deterministic", "on"] = "deterministic"
    #: Lifetime of a cached response, seconds.
    cache_ttl_s: float = Field(default=3_600.0, gt=0)
    #: Longest a worker waits for an identical in-flight call (single flight) before
    #: calling itself: the slowest normal call (30 s) plus a limiter wait, doubled.
    cache_wait_s: float = Field(default=60.0, ge=0)
    #: Overall daily spend cap in USD (UTC day); unset = no cap.
    budget_daily_usd: float | None = Field(default=None, ge=0)
    #: Daily cap per tenant in USD, for tenants not in AGENTJOBS_BUDGET_TENANTS; unset = none.
    budget_tenant_daily_usd: float | None = Field(default=None, ge=0)
    #: Per-tenant daily caps as JSON, e.g. {"acme": 50, "free-tier": 1}.
    budget_tenants: dict[str, float] = Field(default_factory=dict)
    #: Price overrides, a JSON file {model_id: {input, cache_write_5m, cache_write_1h,
    #: cache_read, output}} in USD per million tokens (catalog.read_prices); read and
    #: checked when the settings load, so a bad file stops the worker at start.
    prices_file: Path | None = None
    #: What happens to a call over budget: reject (BudgetExceededError), downgrade (to
    #: the next cheaper family, then reject) or defer (retry later, until budget frees).
    budget_action: Literal["reject", "downgrade", "defer"] = "reject"
    #: Countdown of a deferred call, seconds (kept far below the visibility timeout).
    budget_defer_s: float = Field(default=60.0, gt=0)
    #: model="auto": messages longer than this (estimated tokens, system prompt not
    #: counted) go to Sonnet.
    route_long_tokens: int = Field(default=6_000, ge=0)
    #: model="auto": max_tokens above this (long-form writing) goes to Sonnet.
    route_long_output_tokens: int = Field(default=2_048, ge=1)
    #: model="auto": ask Haiku to classify requests the rules leave undecided (one
    #: small call at submit time, billed to the tenant).
    route_classifier: bool = False
    #: Days the per-day cost totals are kept in Redis.
    cost_retention_days: int = Field(default=90, ge=1)

    # --- reliability (docs/reliability.md) ---------------------------------------
    #: Calls that may fail with an error (529, 5xx, connection, timeout) before the task
    #: is dead-lettered; 429s do not count.
    retry_max_attempts: int = Field(default=5, ge=1)
    #: Full-jitter exponential backoff: retry n waits uniform(0, min(MAX, BASE * 2**(n-1))).
    retry_backoff_base_s: float = Field(default=1.0, ge=0)
    #: Longest backoff of one retry, seconds (kept below the visibility timeout).
    retry_backoff_max_s: float = Field(default=60.0, ge=0)
    #: From the first attempt: no error retry is scheduled past this, seconds.
    retry_max_total_s: float = Field(default=600.0, gt=0)
    #: From the first attempt: no 429 wait is scheduled past this, seconds.
    retry_rate_limit_max_total_s: float = Field(default=3_600.0, gt=0)
    #: Per-queue overrides as JSON by family, e.g. {"opus": {"max_attempts": 8}}; keys are
    #: the retry_* names above without the prefix.
    retry_policies: dict[str, dict[str, float]] = Field(default_factory=dict)
    #: Idempotency lease: a call's owner renews it every third of this; a killed worker's
    #: lease lapses after it, so a later copy may call.
    idempotency_lease_s: float = Field(default=30.0, gt=0)
    #: Longest a copy waits in its thread for another copy's call of the same key before
    #: stepping aside (retry with a countdown), seconds.
    idempotency_wait_s: float = Field(default=30.0, ge=0)
    #: Dead letters kept at most (oldest dropped first).
    dlq_max_records: int = Field(default=100_000, ge=1)
    #: Dead letters older than this are dropped, seconds (default 14 days).
    dlq_max_age_s: float = Field(default=14 * 86_400.0, gt=0)
    #: After a spend-limit 429, calls of that rate-limit group are refused (dead-lettered
    #: without calling) for this long, seconds; `agentjobs dlq resume GROUP` lifts it.
    spend_pause_s: float = Field(default=3_600.0, ge=0)
    #: Cold shutdown (SIGQUIT): running calls get this long before they are cancelled and
    #: their messages go back to the queue (Celery soft shutdown), seconds.
    soft_shutdown_s: float = Field(default=60.0, ge=0)
    #: How long a worker keeps retrying a state-store (Redis) operation before giving
    #: the task back, seconds: covers a Redis restart without losing a paid answer.
    state_retry_s: float = Field(default=30.0, ge=0)
    #: Submit ledger (docs/reliability.md): record every published task in the state
    #: store until it ends, so a message lost by kombu's Redis transport (popped, never
    #: recorded as unacked) is found and re-sent. Costs one Redis write per submit.
    ledger_enabled: bool = True
    #: A ledger entry younger than this is never judged lost, seconds: well above the
    #: time from publish to a worker's unacked record (milliseconds); a task still queued
    #: is recognised by the queue's order, whatever its age. Also how long a running
    #: agent session goes unchanged before the session sweep looks for its work.
    ledger_grace_s: float = Field(default=120.0, ge=0)
    #: Each worker sweeps the ledger this often (one sweeper at a time across hosts,
    #: under a Redis lock), seconds, and the stalled agent sessions (one sweep per
    #: interval across hosts); 0 turns both in-worker sweeps off.
    ledger_sweep_interval_s: float = Field(default=30.0, ge=0)

    # --- Message Batches lane (docs/batches.md) -----------------------------------
    #: The lane of a request that names none, by ``tenant:NAME`` or ``queue:NAME``
    #: (the tenant's entry wins), e.g. {"tenant:nightly": "batch"}; otherwise "sync".
    lane_defaults: dict[str, Literal["sync", "batch"]] = Field(default_factory=dict)
    #: A model group's waiting batch-lane requests are submitted as one Message Batch
    #: once this many wait (the API takes at most 100,000).
    batch_max_requests: int = Field(default=10_000, ge=1, le=100_000)
    #: ... or once their bodies add up to this many bytes (the API takes at most 256 MB).
    batch_max_bytes: int = Field(default=128 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    #: ... or once the oldest has waited this long, seconds.
    batch_max_age_s: float = Field(default=60.0, ge=0)
    #: The batcher and poller look this often, seconds (one worker at a time, under a
    #: Redis lock); 0 turns them off in this worker.
    batch_tick_s: float = Field(default=1.0, ge=0)
    #: First wait between two looks at an open batch, seconds; doubled up to the max.
    batch_poll_min_s: float = Field(default=5.0, gt=0)
    #: Longest wait between two looks at an open batch, seconds.
    batch_poll_max_s: float = Field(default=300.0, gt=0)
    #: Lifetime of the batcher's lock, seconds, renewed every tick: how soon another
    #: worker takes over from a dead one. A create call's timeout is half of it.
    batch_lock_s: float = Field(default=60.0, ge=2)

    # --- agent sessions (docs/agents.md) -------------------------------------------
    #: Where session records live: empty for the state store (Redis), or a postgresql://
    #: URL (with every checkpoint in a history table; `agentjobs sessions migrate` creates
    #: the schema).
    session_store: str | None = None
    #: How long either store keeps an ended session after its last write, seconds (30
    #: days; PostgreSQL with its history, pruned by workers). Never one running or
    #: waiting for approval.
    session_retention_s: float = Field(default=30 * 86_400.0, gt=0)

    # --- operations (docs/operations.md) -----------------------------------------
    #: Record metrics (counters, histograms, live gauges) in the state store.
    metrics_enabled: bool = True
    #: Minutes of per-minute aggregates kept for `agentjobs stats --minutes N` (1 day).
    metrics_retention_min: int = Field(default=1440, ge=1)
    #: Flower basic auth, "user:password" (comma-separate several). Required by
    #: `agentjobs flower` unless it listens on a loopback address only.
    flower_basic_auth: str | None = None
    #: OpenTelemetry spans per task, API call and agent step (docs/telemetry.md): "auto"
    #: records when the app has set a tracer provider or the standard OTEL_* variables
    #: name an exporter (OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT); "on" builds
    #: one from OTEL_* even so (OTLP by default); "off" records nothing.
    otel: Literal["auto", "on", "off"] = "auto"
    #: Log line format of agentjobs' loggers and the worker: "text" (Celery's, with the
    #: task's fields appended) or "json" (one object a line, the fields as keys).
    log_format: Literal["text", "json"] = "text"
    #: Debugging only: let log lines carry prompt and answer text. Off, the API key and
    #: any request's text are kept out of every log line agentjobs writes.
    log_prompts: bool = False
    #: Basic auth of `agentjobs console`, "user:password" (comma-separate several).
    #: Required unless it listens on a loopback address only.
    console_basic_auth: str | None = None

    @field_validator("retry_policies")
    @classmethod
    def _check_retry_policies(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        # Checked when the settings load (worker start), not when a task first fails.
        for family, overrides in v.items():
            if family not in FAMILIES:
                raise ValueError(f"unknown family {family!r} (one of {', '.join(FAMILIES)})")
            Policy.model_validate(overrides)
        return v

    @field_validator("session_store")
    @classmethod
    def _check_session_store(cls, v: str | None) -> str | None:
        if not v:
            return None
        if not v.startswith(("postgresql://", "postgres://")):
            # of a URL the scheme only: the rest may hold a password
            what = f"{v.partition('://')[0]}://" if "://" in v else f"{v[:40]!r} (not a URL)"
            raise ValueError(
                f"{what} is not a session store: leave it empty for the state store "
                "(Redis) or give a postgresql:// URL"
            )
        return v

    @field_validator("prices_file", mode="before")
    @classmethod
    def _empty_prices_file_is_none(cls, v: Any) -> Any:
        return None if v == "" else v

    @field_validator("prices_file")
    @classmethod
    def _check_prices_file(cls, v: Path | None) -> Path | None:
        if v is not None:
            catalog.read_prices(v)
        return v

    def call_timeout_s(self, max_tokens: int) -> float:
        """The longest one Messages API call of ``max_tokens`` may take, streamed or not:
        connecting, the first-token allowance, then ``max_tokens`` at the slowest output
        rate a call is given time for. Leases held across a call (limiter slot, budget,
        single flight) outlive it by this."""
        return (
            self.connect_timeout_s
            + self.stream_first_token_allowance_s
            + max_tokens / self.stream_min_tokens_per_s
        )

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


#: Celery reads these from the environment before its configuration, so each would win
#: over the agentjobs setting named beside it while get_settings() reports the latter.
_CELERY_ENV = {
    "CELERY_BROKER_URL": "broker_url",
    "CELERY_BROKER_READ_URL": "broker_url",
    "CELERY_BROKER_WRITE_URL": "broker_url",
    "CELERY_RESULT_BACKEND": "result_backend",
}

#: How pydantic-settings names the field whose value it could not decode (JSON).
_UNDECODABLE = re.compile(r'error parsing value for field "(\w+)"')


def check_celery_environment(s: Settings) -> None:
    """One source of truth for agentjobs' own app (``worker/app.py`` calls this when its
    configuration loads): refuse a CELERY_* variable that disagrees with agentjobs. Not
    for a project's app that agentjobs is installed on: its broker is its own, often
    read from these very variables."""
    for var, field in _CELERY_ENV.items():
        theirs = os.environ.get(var)
        ours = s.broker_url if field == "broker_url" else s.backend_url
        if not theirs or theirs == ours:  # Celery, too, ignores an empty one
            continue
        from kombu.utils.url import maybe_sanitize_url  # no passwords in the message

        name = f"AGENTJOBS_{field.upper()}"
        shown = maybe_sanitize_url(ours)
        if field not in s.model_fields_set:  # the default: the state store for results
            shown = f"unset: {'the state store, ' if field == 'result_backend' else ''}{shown}"
        raise ConfigurationError(
            f"{var} ({maybe_sanitize_url(theirs)}) and {name} ({shown}) differ: Celery would "
            f"use the first while agentjobs reports the second; set only {name}"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use; a bad value
    raises ConfigurationError naming it."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            name = "AGENTJOBS_" + str(err["loc"][0]).upper() if err["loc"] else "settings"
            where = ".".join(str(p) for p in err["loc"][1:])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append(f"{name}{' (' + where + ')' if where else ''}: {msg}")
        raise ConfigurationError("bad setting: " + "; ".join(problems)) from None
    except ValueError as exc:
        # pydantic-settings' SettingsError: a value it decodes as JSON (dicts) is not JSON.
        found = _UNDECODABLE.search(str(exc))
        if found is None:
            raise ConfigurationError(f"bad setting: {exc}") from None
        name = "AGENTJOBS_" + found.group(1).upper()
        why = f" ({exc.__cause__})" if exc.__cause__ else ""
        raise ConfigurationError(f"bad setting: {name}: not valid JSON{why}") from None
    return settings


def reset_settings() -> None:
    """Forget cached settings (tests that change the environment call this)."""
    get_settings.cache_clear()
    catalog.forget_prices()


catalog.prices_from(lambda: get_settings().prices_file)

"""Every Redis key agentjobs writes in the state store, with its lifetime.

All keys start with ``settings.key_prefix`` (``agentjobs``), shown as ``{p}``;
``{day}`` is a UTC date ``YYYY-MM-DD``; tenant ``(none)`` means "no tenant".
Add an entry here when you add a key.

"A call's longest" below is ``Settings.call_timeout_s(max_tokens)`` for the call's
max_tokens: ``AGENTJOBS_CONNECT_TIMEOUT_S`` + ``AGENTJOBS_STREAM_FIRST_TOKEN_ALLOWANCE_S``
+ max_tokens / ``AGENTJOBS_STREAM_MIN_TOKENS_PER_S`` (5 + 120 + 1024 / 10 = 227.4 s at
the defaults and 1024 tokens), streamed or not; leases held across a call outlive it.

Rate limiter (limiter/gcra.py; ``{fp}`` is the API key's fingerprint, 16 hex of its
SHA-256, never the key; ``{g}`` the rate-limit group; the braces are a Redis Cluster
hash tag, so one group's keys share a slot):

- ``{p}:limiter:{{fp}:{g}}`` hash, TTL 1 day from last use: per dimension
  ``tat_rpm|itpm|otpm`` (GCRA theoretical arrival time, ms) and ``srv_*`` (the
  server's ``-limit`` headers); ``pause_until`` (ms; with ``pause_reason`` and the
  ``pause_reason_until`` it was given for, an operator's pause), ``in_ratio`` (input calibration),
  ``out_ewma`` and ``out_dev`` (output mean and mean deviation), ``shift_ms`` (how far
  pull-backs and pauses moved the booked schedule, in total), ``oshift_ms`` (signed
  total of how far real output corrections moved ``tat_otpm``: output-bound sleepers
  follow it); counters ``admitted``, ``deferred``, ``wait_ms``, ``rate_limited``,
  ``pullbacks``, ``pullback_ms``.
- ``{p}:limiter:{{fp}:{g}}:sched`` zset, TTL 1 day: reservations by start time (ms),
  member ``{id}:{input}:{output}``, moved along with ``shift_ms``; entries older than a
  minute are dropped.
- ``{p}:limiter:{{fp}:{g}}:leases`` zset, TTL its longest lease + 1 s (set by each
  take): concurrency leases scored by expiry (ms), member the reservation id; lease
  lifetime = the call's longest + 30 s (``Limiter.lease_ms``). Taken by the acquire
  script (a call that may start at once) or by lease.lua (a call that slept first),
  given back by the settle script.

Cost and budgets (cost.py, budget.py):

- ``{p}:cost:{day}`` hash, TTL ``AGENTJOBS_COST_RETENTION_DAYS``: spend of the day,
  fields ``usd``, ``calls``, ``hits``, ``saved_usd``, ``in``, ``out``, ``cache_write``,
  ``cache_read`` (tokens sent: a response-cache hit sends none) and the same per
  dimension, ``{measure}:model:{id}``, ``{measure}:queue:{q}``, ``{measure}:tenant:{t}``.
- ``{p}:budget:{day}`` hash, TTL 2 days: estimated cost of calls in flight, nano-USD,
  fields ``reserved`` and ``reserved:{tenant}``.
- ``{p}:budget:{day}:leases`` zset, TTL 2 days: one member per in-flight reservation,
  ``{id}\\t{tenant}\\t{nano_usd}``, scored by its expiry in ms (the call's longest +
  ``AGENTJOBS_LIMITER_MAX_SLEEP_S`` + 60 s), so a killed worker's reservation lapses.

Response cache (cache.py):

- ``{p}:rc:{tenant}:{sha256}`` string, TTL ``AGENTJOBS_CACHE_TTL_S``: a stored result.
- ``{p}:rc:{tenant}:{sha256}:lock`` string, TTL the call's longest +
  ``AGENTJOBS_LIMITER_MAX_SLEEP_S`` + 30 s: the single-flight lease of the worker
  computing that entry.
- ``{p}:rc:stats`` hash, no TTL: counters ``hits``, ``misses``, ``stores``, ``coalesced``.

Idempotency (idempotency.py), ``{k}`` an idempotency key:
- ``{p}:idem:{k}:lease`` string, TTL ``AGENTJOBS_IDEMPOTENCY_LEASE_S`` renewed by the
  holder's heartbeat: the owner token of the one copy calling Claude for ``{k}``.
- ``{p}:idem:{k}:out`` string, TTL ``AGENTJOBS_RESULT_TTL_S`` (a result) or
  ``AGENTJOBS_DLQ_MAX_AGE_S`` (a dead letter): ``{"result": ...}`` or
  ``{"dead_letter": id, "message": ...}``.
- ``{p}:idem:{k}:attempts`` list, TTL ``AGENTJOBS_RESULT_TTL_S``: the key's failed
  attempts (JSON), the retry policy's memory; deleted when the outcome is stored.

Dead letters (deadletter.py):
- ``{p}:dlq:{id}`` string, TTL ``AGENTJOBS_DLQ_MAX_AGE_S``: one dead letter (JSON);
  ``id`` is ``dl_`` + sha256(idempotency key)[:24].
- ``{p}:dlq:index`` zset, no TTL (trimmed by age and ``AGENTJOBS_DLQ_MAX_RECORDS`` on
  every write): dead-letter ids scored by time of death.
- ``{p}:pause:{group}`` string, TTL ``AGENTJOBS_SPEND_PAUSE_S``: a rate-limit group
  paused after a spend-limit 429 (the reason); ``agentjobs limiter resume GROUP`` deletes it.
  Read by the limiter's acquire script (for every API key, so outside the limiter's
  hash tag: the one key of another concept a limiter script touches).

Submit ledger (ledger.py, sweeper.py; docs/reliability.md):
- ``{p}:ledger`` hash, no TTL (an entry ends with its key's outcome, in the same Lua
  call; the sweeper drops entries older than ``AGENTJOBS_RESULT_TTL_S``): task id ->
  ``{"t": recorded at, "q": queue, "k": idempotency key, "r": re-sends}``.
- ``{p}:ledger:kwargs`` hash, no TTL (removed with the entry): task id -> the task's
  kwargs JSON (read only to re-send it).
- ``{p}:ledger:times`` zset, no TTL: the same task ids scored by the time recorded.
- ``{p}:ledger:stats`` hash, no TTL: counters ``resent``, ``expired``.
- ``{p}:ledger:lock`` string, TTL confirm delay + 60 s: the one sweeper running.

Message Batches lane (lanes/records.py; docs/batches.md), ``{cid}`` a request's
``custom_id`` (``aj_`` + 48 hex of the SHA-256 of its idempotency key):
- ``{p}:batch:req`` hash, no TTL (a field ends with its request's outcome): ``{cid}`` ->
  the request JSON (key, kwargs, API params, group, queue, tenant, queued at, deadline,
  batches sent in, errors).
- ``{p}:batch:tasks:{cid}`` set, no TTL (deleted with the request): the task ids waiting
  for its answer.
- ``{p}:batch:where`` hash, no TTL: ``{cid}`` -> ``pending`` or the local id of the open
  batch holding it.
- ``{p}:batch:pending:{group}`` zset, no TTL: the group's waiting requests scored by the
  time queued.
- ``{p}:batch:open`` hash, no TTL (a field ends once its batch's answers are written):
  local id -> the batch JSON (``state`` ``submitting`` with the newest batch id seen
  before the create, then ``in_progress`` with the API's id; its custom_ids; next poll).
- ``{p}:batch:stats`` hash, no TTL: counters ``batches``, ``requests``, ``ended``,
  ``succeeded``, ``errored``, ``expired``, ``canceled``, ``retried``, ``resubmitted``,
  ``recovered``, ``dead_lettered``, ``saved_usd``.
- ``{p}:batch:lock`` string, TTL ``AGENTJOBS_BATCH_LOCK_S`` (renewed every tick): the
  one batcher running.

Metrics (ops/metrics.py, ops/signals/; docs/operations.md):
- ``{p}:metrics:total`` hash, no TTL: all-time counters and histogram buckets; fields
  ``c|{name}|{labels}`` (counter; cost in 1e-10 USD), ``h|{name}|{bucket}|{labels}``
  (bucket count), ``s|{name}|{labels}`` (histogram sum, microseconds).
- ``{p}:metrics:m:{minute}`` hash (``{minute}`` = epoch seconds // 60), TTL
  ``AGENTJOBS_METRICS_RETENTION_MIN`` + 2 min: the same fields for one minute.
- ``{p}:metrics:inflight`` zset, no TTL: ``{queue}|{model}|{call id}`` scored by when
  it goes stale (its start + the bound of a call of its ``max_tokens`` + 60 s; dropped
  on read after that: a killed process's); added in the script call that writes the
  task's start, removed in its outcome's.
- ``{p}:metrics:workers:{queue}`` zset, TTL 1 day: worker hostnames scored by their last
  heartbeat (every 10 s; alive within 30 s).
- ``{p}:metrics:session:{id}:started|ended``, ``...:ended:{k}`` and ``...:reopened:{k}``
  (after the session's k-th re-open by a replay) string, TTL 7 days
  (ops/session_metrics.py): set NX by the one writer that counts a session's start,
  re-open or ending, so a redelivered report is not counted twice.

Agent sessions (agents/redis_store.py, when AGENTJOBS_SESSION_STORE is empty; docs/agents.md):
- ``{p}:session:{id}`` hash, TTL ``AGENTJOBS_SESSION_RETENTION_S`` from the last write
  once the session has ended, none while it runs or waits for approval:
  ``record`` (the session record JSON), ``summary`` (what ``sessions list`` shows),
  ``version``, ``status`` (its position in agents/store.py STATUSES), ``writer`` (the
  token of the write that stored it, so a retried write knows itself).
- ``{p}:sessions`` zset, TTL the same (none once it holds a session not ended), pushed
  out by every write: every session id scored by ``created_at`` (list by time). Ids of
  expired records are dropped by ``list``, a few at a time by each create, and by the
  workers' prune (agents/retention.py).
- ``{p}:sessions:status:{status}`` zset, TTL the same: the ids of the sessions in that
  status, scored by ``created_at`` (list by status); moved in the write that changes it.

Celery's own keys (not under the prefix; named by Celery and kombu, celeryconfig.py):
- Broker (``AGENTJOBS_BROKER_URL``, when Redis): lists ``claude.haiku``,
  ``claude.sonnet``, ``claude.opus``, ``agentjobs.tools`` (the queues, no TTL; a tool's
  own queue too); ``unacked`` hash and ``unacked_index`` zset (messages delivered, not
  yet acked: redelivered after ``AGENTJOBS_VISIBILITY_TIMEOUT_S``); ``_kombu.binding.*``
  sets (routing).
- Result backend (``AGENTJOBS_RESULT_BACKEND``): ``celery-task-meta-{task_id}`` string,
  TTL ``AGENTJOBS_RESULT_TTL_S``: state and result (a ClaudeResult) of one task.
"""

from __future__ import annotations

import hashlib

from agentjobs.settings import get_settings


def key(*parts: str) -> str:
    """``{prefix}:part1:part2...``."""
    return ":".join((get_settings().key_prefix, *parts))


# Keys that scripts of more than one module touch, named once here: the idempotency
# scripts end a dead letter and a submit-ledger entry in the same call that stores an
# outcome; the limiter's acquire script reads a group's spend-limit pause.


def dead_letter_id(idempotency_key: str) -> str:
    """The dead-letter id of an idempotency key: stable, so a key has at most one record."""
    return "dl_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]


def dead_letter_key(dl_id: str) -> str:
    return key("dlq", dl_id)


def dead_letter_index() -> str:
    return key("dlq", "index")


def ledger_keys() -> list[str]:
    """The submit ledger's entries, kwargs and times: what removing an entry touches."""
    return [key("ledger"), key("ledger", "kwargs"), key("ledger", "times")]


def spend_pause_key(group: str) -> str:
    """A rate-limit group's spend-limit pause: set by the retry code, read by the
    limiter's acquire script, shown and lifted by ``limiter/pause.py``."""
    return key("pause", group)

"""Every Redis key agentjobs writes in the state store, with its lifetime.

All keys start with ``settings.key_prefix`` (``agentjobs``), shown as ``{p}``;
``{day}`` is a UTC date ``YYYY-MM-DD``; tenant ``-`` means "no tenant".
Add an entry here when you add a key.

Cost and budgets (cost.py, budget.py):

- ``{p}:cost:{day}`` hash, TTL ``AGENTJOBS_COST_RETENTION_DAYS``: spend of the day,
  fields ``usd``, ``calls``, ``hits``, ``saved_usd``, ``in``, ``out`` and the same per
  dimension, ``{measure}:model:{id}``, ``{measure}:queue:{q}``, ``{measure}:tenant:{t}``.
- ``{p}:budget:{day}`` hash, TTL 2 days: estimated cost of calls in flight, nano-USD,
  fields ``reserved`` and ``reserved:{tenant}``.
- ``{p}:budget:{day}:leases`` zset, TTL 2 days: one member per in-flight reservation,
  ``{id}\\t{tenant}\\t{nano_usd}``, scored by its expiry in ms, so a killed worker's
  reservation lapses.

Response cache (cache.py):

- ``{p}:rc:{tenant}:{sha256}`` string, TTL ``AGENTJOBS_CACHE_TTL_S``: a stored result.
- ``{p}:rc:{tenant}:{sha256}:lock`` string, TTL request timeout + 30 s: the
  single-flight lease of the worker computing that entry.
- ``{p}:rc:stats`` hash, no TTL: counters ``hits``, ``misses``, ``stores``, ``coalesced``.
"""

from __future__ import annotations

from agentjobs.settings import get_settings


def key(*parts: str) -> str:
    """``{prefix}:part1:part2...``."""
    return ":".join((get_settings().key_prefix, *parts))

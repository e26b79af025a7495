"""Cost of a call from the price table in ``catalog``, and spend totals per day.

Every finished call (and every response-cache hit, at zero cost) is added to one Redis
hash per UTC day, ``{prefix}:cost:{day}`` (see keys.py), with totals overall and per
model, queue and tenant. ``budget.py`` reads its spend from the same hash, so the
budget and ``agentjobs cost`` can never disagree.

Functions take the state store as ``client`` and the settings as ``settings``
(keywords; the process's when not given), so a test can hand in its own.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import redis

from agentjobs import keys, store
from agentjobs.call import Call
from agentjobs.messages.result import ClaudeResult, Usage
from agentjobs.settings import Settings, get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

_ADD = store.lua("agentjobs.spend", "cost_add.lua")

#: Dimensions of the per-day totals; a field is ``{measure}:{dimension}:{value}``.
DIMENSIONS = ("model", "queue", "tenant")
MEASURES = ("usd", "calls", "hits", "saved_usd", "in", "out", "cache_write", "cache_read")
#: Tenant name recorded for calls without one: not a valid tenant, so never a real one.
NO_TENANT = "(none)"


def today(now: dt.datetime | None = None) -> str:
    """The budget and totals day: the UTC date ``YYYY-MM-DD``."""
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d")


def day_key(day: str) -> str:
    return keys.key("cost", day)


def record(
    *,
    model: str,
    queue: str,
    tenant: str | None,
    usage: Usage,
    cost: float,
    cached: bool = False,
    saved_usd: float = 0.0,
    day: str | None = None,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> None:
    """Add one call (or one response-cache hit: ``cached=True``, ``cost=0``) to today's totals."""
    r = client or state_redis()
    k = day_key(day or today())
    values = {
        "usd": cost,
        "calls": 1,
        "hits": 1 if cached else 0,
        "saved_usd": saved_usd,
        # tokens actually sent to the API: a cache hit sends none
        "in": 0 if cached else usage.input_tokens,
        "out": 0 if cached else usage.output_tokens,
        "cache_write": 0 if cached else usage.cache_creation_input_tokens,
        "cache_read": 0 if cached else usage.cache_read_input_tokens,
    }
    ints: list[Any] = []
    floats: list[Any] = []
    for measure, amount in values.items():
        if not amount:
            continue
        # as redis-py would send them: ints as decimals, floats as repr()
        out, arg = (ints, amount) if isinstance(amount, int) else (floats, repr(float(amount)))
        for dim, value in (("model", model), ("queue", queue), ("tenant", tenant or NO_TENANT)):
            out += (f"{measure}:{dim}:{value}", arg)
        out += (measure, arg)
    script = store.script(r, _ADD)
    ttl = (settings or get_settings()).cost_retention_days * 86_400
    script(keys=[k], args=[ttl, len(ints) // 2, *ints, *floats])


def record_result(
    result: ClaudeResult,
    *,
    saved_usd: float = 0.0,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> None:
    """Add a result (fresh, or a cache hit with the cost it saved) to today's totals.

    Best effort: the call already happened and is paid for, so a state-store error here
    is logged, not raised (raising would retry the task and pay for the call twice).
    """
    try:
        record(
            model=result.model,
            queue=result.queue,
            tenant=result.tenant,
            usage=result.usage,
            cost=result.cost_usd,
            cached=result.cached,
            saved_usd=saved_usd,
            client=client,
            settings=settings,
        )
    except redis.RedisError as exc:
        log.warning("cost of task %s not added to the totals: %s", result.task_id, exc)


def record_cost(call: Call, next: Any) -> ClaudeResult:
    """The pipeline's record step: the call's cost (computed once, with its answer) is
    added to the day's totals, inside the budget step, so the reservation is released
    only after the real cost counts."""
    result: ClaudeResult = next(call)
    record_result(result)
    return result


@dataclass
class DayTotals:
    """Spend of one UTC day: overall and per model, queue and tenant."""

    day: str
    totals: dict[str, float] = field(default_factory=dict)
    #: ``by["model"]["claude-haiku-4-5"]["usd"]``
    by: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"day": self.day, **self.totals, "by": self.by}


def day_totals(day: str, *, client: redis.Redis | None = None) -> DayTotals:
    """The totals of one day (zeros when nothing was recorded)."""
    r = client or state_redis()
    raw = r.hgetall(day_key(day))
    out = DayTotals(day, {m: 0.0 for m in MEASURES}, {d: {} for d in DIMENSIONS})
    for name_b, value_b in raw.items():
        name = name_b.decode()
        value = float(value_b)
        parts = name.split(":", 2)
        if len(parts) == 1:
            out.totals[name] = value
        elif len(parts) == 3 and parts[1] in out.by:
            measure, dim, what = parts
            row = out.by[dim].setdefault(what, {m: 0.0 for m in MEASURES})
            row[measure] = value
    return out


def recent_days(days: int, now: dt.datetime | None = None) -> list[str]:
    """The last ``days`` UTC days, newest first."""
    start = now or dt.datetime.now(dt.UTC)
    return [today(start - dt.timedelta(days=i)) for i in range(days)]


def spent_usd(
    tenant: str | None = None, day: str | None = None, *, client: redis.Redis | None = None
) -> float:
    """Spend recorded today (or on ``day``), overall or of one tenant."""
    name = "usd" if tenant is None else f"usd:tenant:{tenant}"
    value = (client or state_redis()).hget(day_key(day or today()), name)
    return float(value) if value else 0.0

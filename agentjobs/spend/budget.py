"""Daily spend caps, overall and per tenant, that concurrent workers cannot overrun.

Before each call a worker **reserves** the call's estimated cost (input estimate at the
dearest input rate it may be billed, plus ``max_tokens`` of output: an upper bound)
in one Lua script that admits it only if

    spent today + reserved by calls in flight + this estimate <= cap

for the overall cap and the tenant's cap. After the call the real cost is added to
today's totals (cost.py) and the reservation is released; a failed call only releases.
So the spend can pass a cap only by what calls already in flight cost beyond their
estimates, and a reservation of a killed worker lapses after a lease time.

At submit (``check``) the same test runs without reserving, so a caller gets a clear
``BudgetExceededError`` instead of a task that fails later. What happens over budget
is ``AGENTJOBS_BUDGET_ACTION``: ``reject`` (BudgetExceededError), ``downgrade`` (the
next cheaper family: opus -> sonnet -> haiku, then reject) or ``defer`` (in the worker:
BudgetDeferredError, retried after ``AGENTJOBS_BUDGET_DEFER_S``; at submit: accepted).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from agentjobs import catalog, keys, store
from agentjobs.call import Call
from agentjobs.errors import BudgetDeferredError, BudgetExceededError
from agentjobs.messages.request import CompleteRequest
from agentjobs.settings import Settings, get_settings
from agentjobs.spend import cost
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

NANO = 1_000_000_000
#: Cheaper family for ``downgrade``.
CHEAPER = {"opus": "sonnet", "sonnet": "haiku"}
#: Characters per token of the estimate: below the ~4 of English text, so the
#: estimate errs high (an over-estimate only makes the cap conservative).

# KEYS[1] cost:{day} (spend, USD floats)   KEYS[2] budget:{day} (reserved, nano-USD)
# KEYS[3] budget:{day}:leases (zset member -> expiry ms)
# ARGV[1] member "{id}\t{tenant}\t{nano}"  ARGV[2] tenant ("(none)" = none)  ARGV[3] nano
# ARGV[4] overall cap nano (-1 = none)     ARGV[5] tenant cap nano (-1 = none)
# ARGV[6] lease ms   ARGV[7] TTL of KEYS[2], KEYS[3] (s)   ARGV[8] 1 = check only
# Returns {1} admitted, or {0, which ("overall"|"tenant"), spent nano, reserved nano, cap nano}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- lapse the reservations of calls that never came back (killed workers)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
for _, m in ipairs(expired) do
  local tenant, n = string.match(m, '^[^\\t]*\\t(.*)\\t(%d+)$')
  redis.call('HINCRBY', KEYS[2], 'reserved', -tonumber(n))
  redis.call('HINCRBY', KEYS[2], 'reserved:' .. tenant, -tonumber(n))
  redis.call('ZREM', KEYS[3], m)
end
local amount = tonumber(ARGV[3])
local function test(cap, spent_field, reserved_field)
  if cap < 0 then return nil end
  local spent = math.floor(tonumber(redis.call('HGET', KEYS[1], spent_field) or '0') * 1e9)
  local reserved = tonumber(redis.call('HGET', KEYS[2], reserved_field) or '0')
  if spent + reserved + amount > cap then return {spent, reserved, cap} end
  return nil
end
local over = test(tonumber(ARGV[4]), 'usd', 'reserved')
if over then return {0, 'overall', over[1], over[2], over[3]} end
if ARGV[2] ~= '(none)' then
  over = test(tonumber(ARGV[5]), 'usd:tenant:' .. ARGV[2], 'reserved:' .. ARGV[2])
  if over then return {0, 'tenant', over[1], over[2], over[3]} end
end
if ARGV[8] == '1' then return {1} end
redis.call('HINCRBY', KEYS[2], 'reserved', amount)
redis.call('HINCRBY', KEYS[2], 'reserved:' .. ARGV[2], amount)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[6]), ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[7])
redis.call('EXPIRE', KEYS[3], ARGV[7])
return {1}
"""

# KEYS[1] budget:{day}  KEYS[2] budget:{day}:leases
# ARGV[1] member  ARGV[2] tenant  ARGV[3] nano
# Removes the reservation once: a lease that already lapsed was subtracted then.
_RELEASE = """
if redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'reserved', -tonumber(ARGV[3]))
  redis.call('HINCRBY', KEYS[1], 'reserved:' .. ARGV[2], -tonumber(ARGV[3]))
  return 1
end
return 0
"""

_KEY_TTL_S = 2 * 86_400


@dataclass(frozen=True)
class Reservation:
    """An estimated cost held for one call in flight; give it back with ``release``."""

    day: str
    member: str
    tenant: str
    nano: int

    @property
    def usd(self) -> float:
        return self.nano / NANO


def caps(tenant: str | None, settings: Settings | None = None) -> tuple[float | None, float | None]:
    """(overall cap, tenant cap) in USD per day; None = no cap."""
    s = settings or get_settings()
    tenant_cap = None
    if tenant is not None:
        tenant_cap = s.budget_tenants.get(tenant, s.budget_tenant_daily_usd)
    return s.budget_daily_usd, tenant_cap


def enabled(tenant: str | None) -> bool:
    overall, per_tenant = caps(tenant)
    return overall is not None or per_tenant is not None


def estimate_usd(req: CompleteRequest) -> float:
    """An upper-bound estimate of the call's cost: input at the dearest rate it may be
    billed (a cache write for a cached system prompt) plus ``max_tokens`` of output."""
    price = catalog.resolve(req.model).price
    tokens = req.input_estimate(get_settings().limiter_chars_per_token).total
    ttls = _breakpoint_ttls(req)
    rate = price.input
    if "1h" in ttls:
        rate = max(rate, price.cache_write_1h)
    elif ttls:
        rate = max(rate, price.cache_write_5m)
    # a breakpoint may write the whole prefix before it: price all input as a write
    usd = tokens * rate + req.effective_max_tokens() * price.output
    return usd * 1e-6


def _breakpoint_ttls(req: CompleteRequest) -> set[str]:
    """Lifetimes of the request's prompt-cache breakpoints ("5m", "1h")."""
    return set(req.cache_ttls())


def _nano(usd: float | None) -> int:
    return -1 if usd is None else round(usd * NANO)


def _admit(
    req: CompleteRequest, *, check_only: bool, lease_s: float | None = None
) -> tuple[Reservation | None, str]:
    """Run the reserve script; (reservation or None, refusal message or "")."""
    r = state_redis()
    s = get_settings()
    day = cost.today()
    tenant = req.tenant or cost.NO_TENANT
    overall, per_tenant = caps(req.tenant, s)
    nano = max(1, _nano(estimate_usd(req)))
    member = f"{uuid.uuid4().hex}\t{tenant}\t{nano}"
    if lease_s is None:  # outlives any call that still runs: its timeout plus waits
        lease_s = s.request_timeout_s + s.limiter_max_sleep_s + 60
    lease_ms = int(lease_s * 1000)
    k_budget = keys.key("budget", day)
    reply = store.script(r, _RESERVE)(
        keys=[cost.day_key(day), k_budget, k_budget + ":leases"],
        args=[
            member,
            tenant,
            nano,
            _nano(overall),
            _nano(per_tenant),
            lease_ms,
            _KEY_TTL_S,
            1 if check_only else 0,
        ],
    )
    if int(reply[0]) == 1:
        return (None if check_only else Reservation(day, member, tenant, nano)), ""
    which = reply[1].decode() if isinstance(reply[1], bytes) else str(reply[1])
    spent, reserved, cap = (int(x) / NANO for x in reply[2:5])
    who = "overall" if which == "overall" else f"tenant {req.tenant!r}"
    return None, (
        f"{who} daily budget ${cap:.2f} reached: spent ${spent:.4f} today + "
        f"${reserved:.4f} in flight + this call's estimate ${nano / NANO:.4f} "
        f"({req.model}) is over it; it resets at 00:00 UTC"
    )


def _downgrade(req: CompleteRequest, why: str) -> CompleteRequest | None:
    cheaper = CHEAPER.get(req.family)
    if cheaper is None:
        return None
    model = catalog.ALIASES[cheaper]
    reason = f"budget downgrade {req.model} -> {model}: {why}"
    if req.route_reason:
        reason = f"{req.route_reason}; {reason}"
    return req.model_copy(update={"model": model, "route_reason": reason[:500]})


def check(req: CompleteRequest) -> CompleteRequest:
    """Submit-time test: the request to enqueue (maybe downgraded), or BudgetExceededError.

    Nothing is reserved: the worker's ``reserve`` is the authoritative test.
    """
    if not enabled(req.tenant):
        return req
    action = get_settings().budget_action
    while True:
        _, refusal = _admit(req, check_only=True)
        if not refusal:
            return req
        if action == "defer":
            return req  # the worker waits for the budget; a submit is not refused
        if action == "downgrade":
            cheaper = _downgrade(req, refusal)
            if cheaper is not None:
                req = cheaper
                continue
        raise BudgetExceededError(refusal)


def reserve(
    req: CompleteRequest, *, lease_s: float | None = None
) -> tuple[CompleteRequest, Reservation | None]:
    """Worker-side: hold the estimated cost, or act on the budget action.

    Returns the request to call (downgraded with ``downgrade``) and its reservation
    (None when no cap applies); the reservation lapses after ``lease_s`` (default: the
    request timeout plus limiter waits plus a minute) if never released. Raises
    BudgetExceededError (reject, or nothing cheaper left) or BudgetDeferredError (defer:
    retry after ``retry_after_s``).
    """
    if not enabled(req.tenant):
        return req, None
    s = get_settings()
    while True:
        res, refusal = _admit(req, check_only=False, lease_s=lease_s)
        if res is not None:
            return req, res
        if s.budget_action == "downgrade":
            cheaper = _downgrade(req, refusal)
            if cheaper is not None:
                req = cheaper
                continue
        if s.budget_action == "defer":
            raise BudgetDeferredError(refusal, retry_after_s=defer_countdown(s))
        raise BudgetExceededError(refusal)


def hold_budget(call: Call, next: Any) -> Any:
    """The pipeline's budget step: hold the call's estimated cost while the rest of the
    path runs (a downgrade replaces the request), release it after the real cost was
    recorded, or on failure."""
    req, reservation = reserve(call.request)
    if req is not call.request:
        call.request = req
    try:
        return next(call)
    finally:
        release(reservation)


def check_budget(call: Call, next: Any) -> Any:
    """The submit path's budget step: BudgetExceededError at once, or a downgrade."""
    req = check(call.request)
    if req is not call.request:
        call.request = req
    return next(call)


def defer_countdown(s: Settings, now: dt.datetime | None = None) -> float:
    """Seconds until a deferred call tries again: the setting, or less near midnight."""
    now = now or dt.datetime.now(dt.UTC)
    midnight = (now + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, min(s.budget_defer_s, (midnight - now).total_seconds() + 1.0))


def release(res: Reservation | None, client: redis.Redis | None = None) -> bool:
    """Give a reservation back (after the real cost was recorded, or on failure).

    Idempotent: True the first time, False after (or once the lease lapsed)."""
    if res is None:
        return False
    r = client or state_redis()
    k = keys.key("budget", res.day)
    try:
        release = store.script(r, _RELEASE)
        return bool(release(keys=[k, k + ":leases"], args=[res.member, res.tenant, res.nano]))
    except redis.RedisError as exc:  # the reservation's lease lapses on its own
        log.warning("budget reservation not released (lapses later): %s", exc)
        return False


def in_flight_usd(tenant: str | None = None, day: str | None = None) -> float:
    """USD reserved by calls in flight, overall or of one tenant."""
    field = "reserved" if tenant is None else f"reserved:{tenant}"
    value = state_redis().hget(keys.key("budget", day or cost.today()), field)
    return int(value) / NANO if value else 0.0

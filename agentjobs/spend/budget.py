"""Daily spend caps, overall and per tenant, that concurrent workers cannot overrun.

Before each call a worker **holds** the call's estimated cost (``reserve``: input
estimate at the dearest input rate it may be billed, plus ``max_tokens`` of output: an
upper bound) in one Lua script that admits it only if

    spent today + held by calls in flight + this estimate <= cap

for the overall cap and the tenant's cap. After the call the real cost is added to
today's totals (cost.py) and the hold is released; a failed call only releases.
So the spend can pass a cap only by what calls already in flight cost beyond their
estimates, and a hold of a killed worker lapses after a lease time.

At submit (``check``) the same test runs without holding, so a caller gets a clear
``BudgetExceededError`` instead of a task that fails later. What happens over budget
is ``AGENTJOBS_BUDGET_ACTION``: ``reject`` (BudgetExceededError), ``downgrade`` (the
next cheaper family: opus -> sonnet -> haiku, then reject) or ``defer`` (in the worker:
BudgetDeferredError, retried after ``AGENTJOBS_BUDGET_DEFER_S``; at submit: accepted).

Functions take the state store as ``client`` and the settings as ``settings``
(keywords; the process's when not given), so a test can hand in its own.
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

_RESERVE = store.lua("agentjobs.spend", "budget_reserve.lua")
_RELEASE = store.lua("agentjobs.spend", "budget_release.lua")
_KEY_TTL_S = 2 * 86_400


@dataclass(frozen=True)
class Hold:
    """An estimated cost held against the caps for one call in flight; give it back
    with ``release``."""

    day: str
    member: str
    tenant: str
    nano: int

    @property
    def usd(self) -> float:
        return self.nano / NANO


def caps(
    tenant: str | None, *, settings: Settings | None = None
) -> tuple[float | None, float | None]:
    """(overall cap, tenant cap) in USD per day; None = no cap."""
    s = settings or get_settings()
    tenant_cap = None
    if tenant is not None:
        tenant_cap = s.budget_tenants.get(tenant, s.budget_tenant_daily_usd)
    return s.budget_daily_usd, tenant_cap


def enabled(tenant: str | None, *, settings: Settings | None = None) -> bool:
    overall, per_tenant = caps(tenant, settings=settings)
    return overall is not None or per_tenant is not None


def estimate_usd(req: CompleteRequest, *, settings: Settings | None = None) -> float:
    """An upper-bound estimate of the call's cost: input at the dearest rate it may be
    billed (a cache write for a cached system prompt) plus ``max_tokens`` of output."""
    s = settings or get_settings()
    price = catalog.resolve(req.model).price
    tokens = req.input_estimate(s.limiter_chars_per_token).total
    ttls = set(req.cache_ttls())
    rate = price.input
    if "1h" in ttls:
        rate = max(rate, price.cache_write_1h)
    elif ttls:
        rate = max(rate, price.cache_write_5m)
    # a breakpoint may write the whole prefix before it: price all input as a write
    usd = tokens * rate + req.effective_max_tokens() * price.output
    return usd * 1e-6


def _nano(usd: float | None) -> int:
    return -1 if usd is None else round(usd * NANO)


def _admit(
    req: CompleteRequest,
    r: redis.Redis,
    s: Settings,
    *,
    check_only: bool,
    lease_s: float | None = None,
) -> tuple[Hold | None, str]:
    """Run the reserve script; (the hold or None, refusal message or "")."""
    day = cost.today()
    tenant = req.tenant or cost.NO_TENANT
    overall, per_tenant = caps(req.tenant, settings=s)
    nano = max(1, _nano(estimate_usd(req, settings=s)))
    member = f"{uuid.uuid4().hex}\t{tenant}\t{nano}"
    if lease_s is None:  # outlives any call that still runs: its timeout plus waits
        lease_s = s.call_timeout_s(req.effective_max_tokens()) + s.limiter_max_sleep_s + 60
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
        return (None if check_only else Hold(day, member, tenant, nano)), ""
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


def check(
    req: CompleteRequest, *, client: redis.Redis | None = None, settings: Settings | None = None
) -> CompleteRequest:
    """Submit-time test: the request to enqueue (maybe downgraded), or BudgetExceededError.

    Nothing is held: the worker's ``reserve`` is the authoritative test.
    """
    s = settings or get_settings()
    if not enabled(req.tenant, settings=s):
        return req
    r = client or state_redis()
    while True:
        _, refusal = _admit(req, r, s, check_only=True)
        if not refusal:
            return req
        if s.budget_action == "defer":
            return req  # the worker waits for the budget; a submit is not refused
        if s.budget_action == "downgrade":
            cheaper = _downgrade(req, refusal)
            if cheaper is not None:
                req = cheaper
                continue
        raise BudgetExceededError(refusal)


def reserve(
    req: CompleteRequest,
    *,
    lease_s: float | None = None,
    client: redis.Redis | None = None,
    settings: Settings | None = None,
) -> tuple[CompleteRequest, Hold | None]:
    """Worker-side: hold the estimated cost, or act on the budget action.

    Returns the request to call (downgraded with ``downgrade``) and its hold (None when
    no cap applies); the hold lapses after ``lease_s`` (default: the call's bound
    for its max_tokens, plus the limiter's longest sleep, plus a minute) if never
    released. Raises BudgetExceededError (reject, or nothing cheaper left) or
    BudgetDeferredError (defer: retry after ``retry_after_s``).
    """
    s = settings or get_settings()
    if not enabled(req.tenant, settings=s):
        return req, None
    r = client or state_redis()
    while True:
        held, refusal = _admit(req, r, s, check_only=False, lease_s=lease_s)
        if held is not None:
            return req, held
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
    req, held = reserve(call.request)
    if req is not call.request:
        call.request = req
    try:
        return next(call)
    finally:
        release(held)


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


def release(held: Hold | None, *, client: redis.Redis | None = None) -> bool:
    """Give a hold back (after the real cost was recorded, or on failure).

    Idempotent: True the first time, False after (or once its lease lapsed)."""
    if held is None:
        return False
    k = keys.key("budget", held.day)
    try:
        script = store.script(client or state_redis(), _RELEASE)
        return bool(script(keys=[k, k + ":leases"], args=[held.member, held.tenant, held.nano]))
    except redis.RedisError as exc:  # the hold's lease lapses on its own
        log.warning("budget hold not released (lapses later): %s", exc)
        return False


def in_flight_usd(
    tenant: str | None = None, day: str | None = None, *, client: redis.Redis | None = None
) -> float:
    """USD held by calls in flight, overall or of one tenant."""
    field = "reserved" if tenant is None else f"reserved:{tenant}"
    value = (client or state_redis()).hget(keys.key("budget", day or cost.today()), field)
    return int(value) / NANO if value else 0.0

"""The global rate limiter: RPM, ITPM and OTPM of each rate-limit group, in Redis.

One limiter state per *group*: an API key (by fingerprint, never the key itself) x a
model class (``haiku``, ``sonnet``, ``opus``). Every worker thread, process and host
that uses the same key and state store shares it.

- ``acquire`` runs one Lua script (``scripts/acquire.lua``): a GCRA reservation across
  the three dimensions at once. It returns how long to wait instead of refusing, so
  starts are handed out first come, first served, and nobody polls. Time comes from
  Redis (``TIME``), never from worker clocks; tests inject ``now_ms``. The same call
  can take the concurrency lease of a call that may start at once, and read a key that
  refuses the call (the spend-limit pause): one round trip for all three.
- ``settle`` (``scripts/settle.lua``) reconciles the reservation with the real usage
  (input calibration and output size are learned per group as moving averages) and
  lets the server's view win: low ``anthropic-ratelimit-*-remaining`` headers pull the
  whole group back, a 429 pauses it for ``retry-after``. It gives the call's
  concurrency lease back in the same call.
- ``lease`` / ``release`` (``scripts/lease.lua``): concurrency slots as leases with an
  expiry, so a killed worker's slots come back by themselves; ``lease`` is for a call
  that slept first (its acquire took none).
- ``pause`` / ``resume`` (``scripts/resume.lua``): an operator holds a group back, or
  lifts a hold (a 429's or an operator's); ``pause.py`` shows it with the spend pause.

Key layout: see ``agentjobs/keys.py`` ("Rate limiter").
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import redis

from agentjobs import store
from agentjobs.keys import key
from agentjobs.limiter.reservation import (
    DIMENSIONS,
    Reservation,
    ServerView,
    fingerprint,
    to_int,
)
from agentjobs.settings import GroupLimits, Settings

__all__ = ["DIMENSIONS", "Limiter", "OutputMode", "Reservation", "ServerView", "fingerprint"]

#: Weight of one sample in the per-group moving averages (input calibration, output size).
EWMA_ALPHA = 0.1
#: Limiter state lives this long after the group's last use (keeps what it learned).
STATE_TTL_S = 86_400

OutputMode = Literal["realtime", "max_tokens"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Limiter:
    """The shared limiter of one API key; cheap to build, safe across threads."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        key_fingerprint: str,
        limits: Callable[[str], GroupLimits],
        burst_s: float = 2.0,
        headroom_s: float = 0.5,
        output_mode: OutputMode = "realtime",
        output_default: int = 256,
        lease_ttl_s: float = 150.0,
        lease_ttl_per_token_s: float = 0.0,
        now_ms: Callable[[], float] | None = None,
    ) -> None:
        self.redis = client
        self.key_fingerprint = key_fingerprint
        self.limits = limits
        # Our own bursts stop `headroom` short of the server's bucket (up to half of it):
        # requests of one burst reach the server a few ms apart and in any order, and
        # the server's refill starts from its first debit, not from our reservation.
        self.burst_ms = (burst_s - min(headroom_s, burst_s / 2)) * 1000.0
        # The floor from the server's headers keeps half the headroom: alone, our steady
        # state sits a whole headroom below the server's bucket (the shortened bursts),
        # so rounding and estimate noise never trigger a pull-back; another client's
        # consumption does, once it has eaten the first half.
        self.floor_margin_ms = headroom_s * 500.0
        self.output_mode = output_mode
        self.output_default = output_default
        self.lease_ttl_ms = lease_ttl_s * 1000.0
        #: A slot outlives its call: the fixed part above plus this per max_tokens token.
        self.lease_ttl_per_token_ms = lease_ttl_per_token_s * 1000.0
        self.now_ms = now_ms
        self._acquire = store.script(client, store.lua("agentjobs.limiter", "acquire.lua"))
        self._settle = store.script(client, store.lua("agentjobs.limiter", "settle.lua"))
        self._lease = store.script(client, store.lua("agentjobs.limiter", "lease.lua"))
        self._resume = store.script(client, store.lua("agentjobs.limiter", "resume.lua"))

    @classmethod
    def from_settings(
        cls, client: redis.Redis, settings: Settings, key_fingerprint: str
    ) -> Limiter:
        return cls(
            client,
            key_fingerprint=key_fingerprint,
            limits=settings.limits,
            burst_s=settings.limiter_burst_s,
            headroom_s=settings.limiter_headroom_s,
            output_mode=settings.limiter_otpm_mode,
            # settings.call_timeout_s(max_tokens) + 30 s, split into its fixed part and
            # its part per token, so each call's slot lasts as long as the call may.
            lease_ttl_s=settings.call_timeout_s(0) + 30.0,
            lease_ttl_per_token_s=1.0 / settings.stream_min_tokens_per_s,
        )

    # -- keys -------------------------------------------------------------------------

    def _keys(self, group: str) -> list[str]:
        # The hash tag keeps a group's keys in one Redis Cluster slot (one script, one slot).
        base = key("limiter", "{" + f"{self.key_fingerprint}:{group}" + "}")
        return [base, base + ":sched", base + ":leases"]

    def _now(self) -> str:
        return "" if self.now_ms is None else repr(float(self.now_ms()))

    def _limit_args(self, group: str) -> list[int]:
        lim = self.limits(group)
        return [lim.rpm, lim.itpm, lim.otpm]

    # -- admission --------------------------------------------------------------------

    def acquire(
        self,
        group: str,
        raw_input_tokens: int,
        max_tokens: int,
        max_wait_s: float = math.inf,
        *,
        lease: bool = False,
        refused_by: str | None = None,
    ) -> Reservation:
        """Reserve one call's capacity; ``admitted=False`` (nothing reserved) when the
        wait would exceed ``max_wait_s``. The caller sleeps ``wait_s`` then calls.

        ``lease``: a call that may start at once takes its concurrency slot in the same
        round trip (``leased``; when every slot is taken, ``lapse_s`` says when the
        soonest lapses). ``refused_by``: a key that, while it is set, refuses the call
        before anything is reserved (``refused`` holds its value).
        """
        state, sched, leases = self._keys(group)
        rid = uuid.uuid4().hex[:16]
        max_wait_ms = max_wait_s * 1000.0 if math.isfinite(max_wait_s) else 1e15
        cap = self.limits(group).concurrency if lease else ""
        lease_ms = self.lease_ms(max_tokens)
        reply = self._acquire(
            keys=[state, sched, leases, *([refused_by] if refused_by else [])],
            args=[
                self._now(),
                self.burst_ms,
                *self._limit_args(group),
                max(0, int(raw_input_tokens)),
                max(1, int(max_tokens)),
                self.output_default,
                self.output_mode,
                max_wait_ms,
                rid,
                STATE_TTL_S,
                cap,
                lease_ms,
            ],
        )
        admitted, wait_us, in_amount, out_amount, binding, start, shift, oshift = reply[:8]
        leased, lapse_ms, refused = reply[8:]
        return Reservation(
            group=group,
            id=rid,
            admitted=bool(admitted),
            wait_s=int(wait_us) / 1e6,
            input_tokens=int(in_amount),
            output_tokens=int(out_amount),
            raw_input_tokens=max(0, int(raw_input_tokens)),
            binding=_text(binding),
            start_ms=float(start),
            shift=_text(shift),
            out_shift=_text(oshift),
            leased=bool(leased),
            lapse_s=int(lapse_ms) / 1000.0,
            refused=_text(refused),
            max_tokens=max(1, int(max_tokens)),
        )

    def settle(
        self,
        res: Reservation,
        *,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        prompt_tokens: int | None = None,
        headers: Mapping[str, str] | Any | None = None,
        retry_after_s: float | None = None,
        refund_output: bool = False,
        called: bool = True,
        release: bool = False,
    ) -> float:
        """Reconcile ``res`` after the call; returns how far (s) the group's schedule moved
        (a pull-back from the headers, or the growth of a 429 pause).

        ``input_tokens`` is what the API charges against ITPM (input plus cache writes;
        cache reads do not count), ``output_tokens`` what it generated: both correct the
        reservation and teach the group's output estimate. ``prompt_tokens`` (all input,
        cache reads included) teaches the chars-per-token calibration. Unknown usage
        (None) leaves that part of the reservation standing. ``refund_output``: the
        server answered an error, so nothing was generated. ``called=False``: the call
        never left, everything is given back. ``retry_after_s`` (a 429) pauses the group.
        ``release``: give the call's concurrency lease back in the same round trip.
        """
        if not called:
            corrections = [-1, -res.input_tokens, -res.output_tokens]
        else:
            in_delta = 0 if input_tokens is None else input_tokens - res.input_tokens
            if output_tokens is not None:
                out_delta = output_tokens - res.output_tokens
            else:
                out_delta = -res.output_tokens if refund_output else 0
            corrections = [0, in_delta, out_delta]
        ratio = ""
        if prompt_tokens is not None and res.raw_input_tokens > 0:
            ratio = repr(prompt_tokens / res.raw_input_tokens)
        view = ServerView.from_headers(headers)
        remaining = list(view.remaining)
        if self.output_mode == "realtime":
            # The server's output bucket lags by everything still being generated and
            # reads 0 when in debt: no floor from it (its 429s still pause the group).
            remaining[2] = None
        pulled_ms, _dim = self._run_settle(
            res.group,
            corrections=corrections,
            remaining=remaining,
            limits=view.limits,
            pause_ms="" if not retry_after_s else repr(float(retry_after_s) * 1000.0),
            ratio=ratio,
            out_sample="" if output_tokens is None else str(int(output_tokens)),
            member=res.member,
            lease=res.id if release else "",
        )
        return int(pulled_ms) / 1000.0

    def _run_settle(
        self,
        group: str,
        *,
        corrections: Sequence[int] = (0, 0, 0),
        remaining: Sequence[int | None] = (None, None, None),
        limits: Sequence[int | None] = (None, None, None),
        pause_ms: str = "",
        ratio: str = "",
        out_sample: str = "",
        member: str = "",
        lease: str = "",
    ) -> Any:
        """One call of settle.lua (its ARGV, in order)."""
        return self._settle(
            keys=self._keys(group),
            args=[
                self._now(),
                self.burst_ms,
                *self._limit_args(group),
                *corrections,
                *("" if v is None else v for v in remaining),
                *("" if v is None else v for v in limits),
                self.floor_margin_ms,
                pause_ms,
                ratio,
                out_sample,
                EWMA_ALPHA,
                member,
                STATE_TTL_S,
                lease,
            ],
        )

    def pause(self, group: str, seconds: float, reason: str = "paused by an operator") -> None:
        """Hold every new start of ``group`` back for ``seconds`` (an outage, a deploy)."""
        self._run_settle(group, pause_ms=repr(float(seconds) * 1000.0))
        # The reason holds for this pause_until only: a later 429 that lengthens the
        # pause makes it a rate-limit pause again (see pause_state).
        state = self._keys(group)[0]
        until = self.redis.hget(state, "pause_until")
        if until is not None:
            self.redis.hset(state, mapping={"pause_reason": reason, "pause_reason_until": until})

    def drift(self, res: Reservation) -> float:
        """Seconds the start of ``res`` moved since it was booked (negative: earlier).

        Pull-backs from headers and 429 pauses move every booked call later. In
        real-time output accounting a call whose start output decided also follows the
        real output of the calls that ended meanwhile (its start was spaced by their
        estimates): earlier when they generated less, later when more.
        """
        shift, oshift = self.redis.hmget(self._keys(res.group)[0], "shift_ms", "oshift_ms")
        moved = float(shift or 0.0) - res.shift_ms
        if self.follows_output(res):
            moved += float(oshift or 0.0) - float(res.out_shift)
        return moved / 1000.0

    def follows_output(self, res: Reservation) -> bool:
        """Whether real output corrections move the start of ``res`` (see ``drift``)."""
        return self.output_mode == "realtime" and res.binding == "otpm"

    def paused_for(self, group: str) -> float:
        """Seconds left of a pause of ``group`` (0 when not paused)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.hget(self._keys(group)[0], "pause_until")
        (sec, usec), until = pipe.execute()
        now = self.now_ms() if self.now_ms is not None else sec * 1000.0 + usec / 1000.0
        return max(0.0, float(until or 0.0) - now) / 1000.0

    def pause_state(self, group: str) -> tuple[float, str, str] | None:
        """The group's pause: (seconds left, "operator" or "rate_limit", reason), or None."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.hmget(self._keys(group)[0], "pause_until", "pause_reason", "pause_reason_until")
        (sec, usec), (until, reason, reason_until) = pipe.execute()
        now = self.now_ms() if self.now_ms is not None else sec * 1000.0 + usec / 1000.0
        left = (float(until) - now) / 1000.0 if until is not None else 0.0
        if left <= 0:
            return None
        if reason is not None and reason_until == until:
            return left, "operator", reason.decode()
        return left, "rate_limit", "429 from the API (its retry-after)"

    def resume(self, group: str) -> float:
        """Lift a pause of ``group`` (an operator acted): new calls may start at once, and
        calls booked behind the pause move earlier. Seconds of pause lifted (0: none)."""
        state, sched, _ = self._keys(group)
        left_ms = self._resume(keys=[state, sched], args=[self._now()])
        return float(left_ms) / 1000.0

    # -- concurrency ------------------------------------------------------------------

    def lease_ms(self, max_tokens: int) -> int:
        """How long a slot held for a call of ``max_tokens`` lasts, ms."""
        return int(self.lease_ttl_ms + max(0, max_tokens) * self.lease_ttl_per_token_ms)

    def lease(self, group: str, lease_id: str, max_tokens: int = 0) -> tuple[bool, float]:
        """Take a concurrency slot for a call of ``max_tokens``; (taken, seconds until the
        soonest lease lapses)."""
        *_, leases = self._keys(group)
        cap = self.limits(group).concurrency
        taken, _held, lapse_ms = self._lease(
            keys=[leases], args=[self._now(), cap, lease_id, self.lease_ms(max_tokens)]
        )
        return bool(taken), int(lapse_ms) / 1000.0

    def release(self, group: str, lease_id: str) -> None:
        self.redis.zrem(self._keys(group)[2], lease_id)

    # -- inspection -------------------------------------------------------------------

    def snapshot(self, group: str) -> dict[str, Any]:
        """The group's state as our side sees it (one round trip, read-only)."""
        state, _, leases = self._keys(group)
        pipe = self.redis.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(state)
        pipe.zrange(leases, 0, -1, withscores=True)
        (sec, usec), raw, lease_rows = pipe.execute()
        now = self.now_ms() if self.now_ms is not None else sec * 1000.0 + usec / 1000.0
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        configured = self.limits(group)
        dims: dict[str, Any] = {}
        for dim in DIMENSIONS:
            limit = getattr(configured, dim)
            server = to_int(fields.get(f"srv_{dim}"))
            effective = min(limit, server) if server else limit
            interval = 60_000.0 / effective
            tat = float(fields.get(f"tat_{dim}", 0.0))
            capacity = max(1.0, effective * self.burst_ms / 60_000.0)
            ahead_ms = max(0.0, tat - now)
            dims[dim] = {
                "limit": effective,
                "configured": limit,
                "server_limit": server,
                "available": round(capacity - ahead_ms / interval, 1),
                "capacity": round(capacity, 1),
                "booked_ahead_s": round(max(0.0, ahead_ms - self.burst_ms) / 1000.0, 3),
            }
        pause_until = float(fields.get("pause_until", 0.0))
        admitted = int(fields.get("admitted", 0))
        wait_ms = float(fields.get("wait_ms", 0.0))
        return {
            "group": group,
            "key": self.key_fingerprint,
            "dimensions": dims,
            "paused_s": round(max(0.0, pause_until - now) / 1000.0, 3),
            "leases": sum(1 for _m, exp in lease_rows if exp > now),
            "concurrency": configured.concurrency,
            "admitted": admitted,
            "deferred": int(fields.get("deferred", 0)),
            "rate_limited": int(fields.get("rate_limited", 0)),
            "pullbacks": int(fields.get("pullbacks", 0)),
            "mean_wait_ms": round(wait_ms / admitted, 3) if admitted else 0.0,
            "input_ratio": float(fields.get("in_ratio", 1.0)),
            "output_estimate": float(fields.get("out_ewma", self.output_default)),
            "output_deviation": float(fields.get("out_dev", 0.0)),
        }

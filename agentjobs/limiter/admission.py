"""The pipeline's limiter step: admission before the Claude call, settlement after.

    admit(call, next): reserve RPM + ITPM + OTPM, sleep the short wait, take a
    concurrency lease, run ``next`` (the send step), then reconcile the reservation
    with the answer's real usage and rate-limit headers (or with the error's).

Round trips: a call that may start at once is reserved, leased and checked against
its group's spend-limit pause in one script call (``acquire``), and settled with its
lease given back in another (``settle``). A call that sleeps first takes its lease
when it wakes (a slot is not held while nobody calls).

A wait longer than ``AGENTJOBS_LIMITER_MAX_SLEEP_S`` reserves nothing and raises
``RateLimitedError`` with a countdown well under the visibility timeout: the task goes
back through the broker (the retry policy's ``rate_limited`` kind: a wait, not an error
attempt) instead of pinning a worker thread. An API error leaving the block feeds the
limiter too: a 429 pauses the whole group for its ``retry-after``, and every error
answer's ``anthropic-ratelimit-*`` headers pull the group back if the server has less
room than we think. ``AGENTJOBS_LIMITER_ENABLED=false`` turns all of it off.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import redis

from agentjobs import keys, store
from agentjobs.api import client
from agentjobs.api.errors import is_rate_limit, retry_after
from agentjobs.call import Call
from agentjobs.errors import RateLimitedError
from agentjobs.limiter.gcra import Limiter
from agentjobs.limiter.reservation import Reservation, fingerprint
from agentjobs.settings import Settings, get_settings
from agentjobs.store import state_redis

log = logging.getLogger(__name__)

#: A 429 without retry-after still pauses the group this long, seconds.
DEFAULT_429_PAUSE_S = 1.0
#: A call booked further ahead than this looks at the schedule again this long before
#: its start: what ended meanwhile may have moved it earlier (a sleeper cannot be woken).
RECHECK_LEAD_S = 0.5


def api_key_fingerprint() -> str:
    """Fingerprint of the credential the SDK will use."""
    return fingerprint(client.credential())


def get_limiter() -> Limiter:
    """The limiter of this process's API key and state store (rebuilt when they change)."""
    return _limiter(state_redis(), get_settings(), api_key_fingerprint())


@store.per_process
def _limiter(conn: redis.Redis, s: Settings, fp: str) -> Limiter:
    return Limiter.from_settings(conn, s, fp)


class SpendPaused(Exception):
    """The acquire found the group's spend-limit pause set: nothing was reserved (the
    pause step turns it into the call's refusal)."""

    def __init__(self, group: str, reason: str) -> None:
        super().__init__(f"rate-limit group {group} is spend-paused: {reason}")
        self.group = group
        self.reason = reason


class Admission:
    """One admitted call: what it waited, and how to settle it."""

    def __init__(self, limiter: Limiter | None, res: Reservation | None, wait_ms: float) -> None:
        self.limiter = limiter
        self.reservation = res
        #: Milliseconds this call spent waiting for the limiter (rate and concurrency).
        self.wait_ms = wait_ms
        self.settled = False
        #: Whether the call still holds its concurrency lease (settling gives it back).
        self.holds_lease = res is not None

    def settle(self, raw: client.RawResponse) -> None:
        """Reconcile with the response's usage and rate-limit headers."""
        if not self.open:
            return
        u = raw.message.usage
        created = getattr(u, "cache_creation_input_tokens", None) or 0
        read = getattr(u, "cache_read_input_tokens", None) or 0
        charged = (u.input_tokens or 0) + created  # cache reads do not count against ITPM
        self._settle(
            input_tokens=charged,
            output_tokens=u.output_tokens or 0,
            prompt_tokens=charged + read,
            headers=raw.headers,
        )

    def failed(self, exc: BaseException) -> None:
        """Reconcile after a failed call: the server's headers, a 429's pause."""
        if not self.open:
            return
        if isinstance(exc, anthropic.APIStatusError):
            headers = exc.response.headers
            pause = None
            if is_rate_limit(exc):
                pause = retry_after(headers) or DEFAULT_429_PAUSE_S
            self._settle(
                headers=headers,
                retry_after_s=pause,
                refund_output=True,  # an error answer generated nothing
            )
        else:  # a timeout or a dropped connection: the call may have run, keep it all
            self._settle()

    def close(self) -> None:
        """The end of the admitted block: settle what nothing settled (the reservation
        stands), and give the lease back if settling could not."""
        self._settle()
        if self.limiter is not None and self.reservation is not None and self.holds_lease:
            res = self.reservation
            if _quietly(self.limiter.release, res.group, res.id):
                self.holds_lease = False

    @property
    def open(self) -> bool:
        """Whether there is a reservation left to settle."""
        return self.limiter is not None and self.reservation is not None and not self.settled

    def _settle(self, **usage: Any) -> None:
        if not self.open:
            return
        assert self.limiter is not None
        self.settled = True
        if _quietly(self.limiter.settle, self.reservation, release=self.holds_lease, **usage):
            self.holds_lease = False


def _quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    # Settling is bookkeeping: a state-store hiccup must not turn a paid answer into a
    # failure (the reservation then simply stands, which errs on the safe side, and an
    # unreleased lease lapses).
    try:
        fn(*args, **kwargs)
    except redis.RedisError as exc:
        log.warning("limiter: could not settle a reservation: %s", exc)
        return False
    return True


def admit(call: Call, next: Any) -> Any:
    """The pipeline's limiter step: the rest of the path (the send step, which leaves
    its raw response in ``call.raw``) runs admitted, and is settled with its answer."""
    with admitted(call) as admission:
        call.wait_ms = admission.wait_ms
        result = next(call)
        if call.raw is not None:
            admission.settle(call.raw)
        return result


@contextmanager
def admitted(call: Call, *, sleep: Callable[[float], None] = time.sleep) -> Iterator[Admission]:
    """Wait for the global limiter and a concurrency lease, then run the block.

    Raises RateLimitedError (nothing reserved, nothing held) when the wait is too long
    for a worker thread, SpendPaused (nothing reserved) while the group's spend-limit
    pause is set. Leaving the block releases the lease; an exception leaving it settles
    the reservation with what the error tells.
    """
    s = get_settings()
    if not s.limiter_enabled:
        yield Admission(None, None, 0.0)
        return
    lim = get_limiter()
    group = call.group
    max_sleep = s.limiter_max_sleep_s
    t0 = time.monotonic()
    res = lim.acquire(
        group,
        call.input_tokens,
        call.max_tokens,
        max_wait_s=max_sleep,
        lease=True,
        refused_by=keys.spend_pause_key(group),
    )
    if res.refused:
        raise SpendPaused(group, res.refused)
    if not res.admitted:
        raise _too_long(group, res.wait_s, res.binding)
    if res.wait_s > 0:
        _follow_schedule(lim, res, max_sleep, sleep)
    _take_lease(lim, res, t0, max_sleep, sleep)
    admit = Admission(lim, res, (time.monotonic() - t0) * 1000.0)
    try:
        yield admit
    except BaseException as exc:
        admit.failed(exc)
        raise
    finally:
        admit.close()


def _follow_schedule(
    lim: Limiter, res: Reservation, max_sleep: float, sleep: Callable[[float], None]
) -> None:
    """Sleep until the booked start, following the group's schedule as it moves.

    A 429 or the server's headers move it later: these booked calls must not go out at
    the old, too-dense pace. Real output corrections move it either way: the booked
    starts were spaced by output estimates: such a call sleeps to ``RECHECK_LEAD_S``
    before its start and looks again, so it can go earlier. Then each look (one HMGET)
    is at the start as it stands, until it no longer moves."""
    lead = RECHECK_LEAD_S if lim.follows_output(res) else 0.0
    slept = moved = 0.0
    while True:
        left = res.wait_s + moved - slept
        if left < 0.001:
            return
        step = left - lead if left > 2 * lead else left
        sleep(step)
        slept += step
        moved = lim.drift(res)
        # Only a big move (a long 429 pause) goes back to the broker: after sleeping
        # most of the bound already, a short extra sleep frees the thread sooner.
        if moved > max_sleep / 2:
            lim.settle(res, called=False)
            raise _too_long(res.group, moved, "pull-back")


def _take_lease(
    lim: Limiter, res: Reservation, t0: float, max_sleep: float, sleep: Callable[[float], None]
) -> None:
    """Hold one of the group's concurrency slots; back off (jittered) while all are taken.

    A call admitted without a wait asked for its slot in the acquire already: it holds
    it (``res.leased``), or every slot was taken and it starts backing off at once."""
    if res.leased:
        return
    step = 0.02
    if res.wait_s == 0:
        taken, lapse_s = False, res.lapse_s
    else:
        taken, lapse_s = lim.lease(res.group, res.id, res.max_tokens)
    while not taken:
        waited = time.monotonic() - t0
        if waited + step > max_sleep:
            lim.settle(res, called=False)  # give the rate reservation back to the others
            raise _too_long(res.group, max(step, lapse_s), "concurrency")
        # Jitter spreads the retries of many waiting threads (no polling storm).
        sleep(random.uniform(0.5, 1.0) * min(step, max(lapse_s, 0.005)))
        step = min(step * 2, 0.5)
        taken, lapse_s = lim.lease(res.group, res.id, res.max_tokens)


def _too_long(group: str, wait_s: float, why: str) -> RateLimitedError:
    s = get_settings()
    # An ETA message sits unacked in a worker: keep it far from the visibility timeout.
    countdown = min(max(wait_s, 0.5), s.visibility_timeout_s / 4)
    return RateLimitedError(
        f"rate-limit group {group}: limiter wait {wait_s:.1f}s ({why}) exceeds "
        f"AGENTJOBS_LIMITER_MAX_SLEEP_S={s.limiter_max_sleep_s:g}; retry in {countdown:.1f}s",
        retry_after_s=countdown,
    )

"""A rate-limit group's pause: what holds its calls back, why, for how long; one lift.

Two things pause a group, with different effects on its calls:

- ``spend_limit``: the API answered that the account's spend limit is reached. Until
  the pause ends (``AGENTJOBS_SPEND_PAUSE_S``) or is lifted, the group's calls are
  refused without calling: dead-lettered, to be replayed once the limit is raised.
  Stored here (``{p}:pause:{group}``), for every API key.
- ``rate_limit`` / ``operator``: the limiter holds new starts back, after a 429 (for
  its ``retry-after``) or for ``agentjobs limiter pause GROUP SECONDS``. Calls wait,
  none is refused. Stored in the limiter's state of the API key (``pause_until``).

The pipeline's ``check_pause`` step refuses a call of a spend-paused group (checked on
the group actually called, after routing and a budget downgrade). With the limiter on,
the pause key is read by the limiter's acquire script, in the round trip that reserves
the call anyway; this step reads it itself only when the limiter is off.
``agentjobs limiter show`` and ``agentjobs stats`` show both; ``agentjobs limiter resume
GROUP`` lifts both (``agentjobs dlq resume GROUP`` is the same command).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from agentjobs import keys, store
from agentjobs.call import Call
from agentjobs.errors import SpendLimitError
from agentjobs.limiter.admission import SpendPaused, get_limiter
from agentjobs.limiter.gcra import Limiter
from agentjobs.settings import get_settings
from agentjobs.store import state_redis

#: The one command that lifts a pause (error messages name it).
RESUME_COMMAND = "agentjobs limiter resume {group}"

Kind = Literal["spend_limit", "rate_limit", "operator"]


@dataclass(frozen=True)
class Pause:
    group: str
    kind: Kind
    reason: str
    seconds_left: float
    #: What happens to the group's calls meanwhile: "refused" (dead-lettered without a
    #: call) or "held" (they wait).
    effect: Literal["refused", "held"]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "seconds_left": round(self.seconds_left, 1)}

    def describe(self) -> str:
        calls = "calls dead-lettered without calling" if self.effect == "refused" else "calls wait"
        return f"{self.kind}, {self.seconds_left:.0f}s left ({self.reason}; {calls})"


def _limiter(limiter: Limiter | None) -> Limiter:
    return limiter if limiter is not None else get_limiter()


def active(group: str, limiter: Limiter | None = None) -> list[Pause]:
    """The pauses of ``group`` now, the one that refuses calls first."""
    found = []
    spend = spend_pause_state(group)
    if spend is not None:
        reason, left = spend
        found.append(Pause(group, "spend_limit", reason, left, "refused"))
    held = _limiter(limiter).pause_state(group)
    if held is not None:
        left, kind, reason = held
        found.append(Pause(group, kind, reason, left, "held"))  # type: ignore[arg-type]
    return found


def resume(group: str, limiter: Limiter | None = None) -> list[Pause]:
    """Lift every pause of ``group``; the pauses that were lifted."""
    lifted = active(group, limiter)
    state_redis().delete(pause_key(group))
    _limiter(limiter).resume(group)
    return lifted


# -- the spend-limit pause --------------------------------------------------------


def pause_key(group: str) -> str:
    return keys.spend_pause_key(group)


def pause_spend(group: str, reason: str, ttl_s: float) -> None:
    """Refuse calls of a rate-limit group for ``ttl_s`` (the account's spend limit)."""
    if ttl_s > 0:
        state_redis().set(pause_key(group), reason, ex=max(1, int(ttl_s)))


def spend_paused(group: str) -> str | None:
    """The reason the group's calls are refused, or None."""
    raw = store.retrying(lambda: state_redis().get(pause_key(group)))
    return None if raw is None else raw.decode()


def spend_pause_state(group: str) -> tuple[str, float] | None:
    """(reason, seconds left) of the group's spend-limit pause, or None."""
    pipe = state_redis().pipeline(transaction=False)
    pipe.get(pause_key(group))
    pipe.pttl(pause_key(group))
    raw, ttl_ms = pipe.execute()
    if raw is None:
        return None
    return raw.decode(), max(0.0, ttl_ms / 1000.0)


def check_pause(call: Call, next: Any) -> Any:
    """The pipeline's pause step: SpendLimitError while the call's group is spend-paused
    (the limiter's own pauses hold calls in the admission step instead).

    With the limiter on, the admission step below reads the pause in its acquire script
    (SpendPaused, nothing reserved): this step costs no round trip of its own, and the
    refusal is still this step's."""
    if not get_settings().limiter_enabled:
        reason = spend_paused(call.group)
        if reason is not None:
            raise _refusal(call.group, reason)
        return next(call)
    try:
        return next(call)
    except SpendPaused as paused:
        raise _refusal(paused.group, paused.reason) from None


def _refusal(group: str, reason: str) -> SpendLimitError:
    return SpendLimitError(
        f"rate-limit group {group} is paused: {reason} "
        f"(lift with `{RESUME_COMMAND.format(group=group)}`, then replay)"
    )

"""A rate-limit group's pause: what holds its calls back, why, for how long; one lift.

Two things pause a group, with different effects on its calls:

- ``spend_limit``: the API answered that the account's spend limit is reached. Until
  the pause ends (``AGENTJOBS_SPEND_PAUSE_S``) or is lifted, the group's calls are
  refused without calling: dead-lettered, to be replayed once the limit is raised.
  Stored by ``deadletter.pause`` (``{p}:pause:{group}``), for every API key.
- ``rate_limit`` / ``operator``: the limiter holds new starts back, after a 429 (for
  its ``retry-after``) or for ``agentjobs limiter pause GROUP SECONDS``. Calls wait,
  none is refused. Stored in the limiter's state of the API key (``pause_until``).

``agentjobs limiter show`` and ``agentjobs stats`` show both; ``agentjobs limiter resume
GROUP`` lifts both (``agentjobs dlq resume GROUP`` is the same command).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from agentjobs import deadletter
from agentjobs.limiter import Limiter

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
    if limiter is not None:
        return limiter
    from agentjobs.admission import get_limiter

    return get_limiter()


def active(group: str, limiter: Limiter | None = None) -> list[Pause]:
    """The pauses of ``group`` now, the one that refuses calls first."""
    found = []
    spend = deadletter.pause_state(group)
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
    deadletter.resume(group)
    _limiter(limiter).resume(group)
    return lifted

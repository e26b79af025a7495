"""What the limiter hands out and what it learns: a reservation, a response's headers.

- :class:`Reservation`: one admission (when the call may start, what was reserved for
  it, whether it already holds its concurrency lease), the handle ``settle`` takes.
- :class:`ServerView`: what one response's ``anthropic-ratelimit-*`` headers say about
  the server's buckets, read once and handed to ``settle``.
- :func:`fingerprint`: the name a limiter state goes by, never the API key itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DIMENSIONS = ("rpm", "itpm", "otpm")
#: Header names of the three dimensions, in DIMENSIONS order.
_HEADER_NAMES = ("requests", "input-tokens", "output-tokens")
#: The API rounds token -remaining headers down to this.
TOKEN_ROUNDING = 1000


def fingerprint(api_key: str) -> str:
    """A short, stable, non-reversible name for an API key (16 hex of its SHA-256)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ServerView:
    """What one response says about the server's buckets (None: no such header).

    ``remaining`` is the most the server may have left: token counts arrive rounded
    down to the thousand, so a multiple of 1,000 stands for up to 999 more. Pulling
    back on the rounded figure would throttle small token limits for nothing.
    """

    remaining: tuple[int | None, int | None, int | None] = (None, None, None)
    limits: tuple[int | None, int | None, int | None] = (None, None, None)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str] | Any | None) -> ServerView:
        if headers is None:
            return cls()
        rem = [to_int(headers.get(f"anthropic-ratelimit-{n}-remaining")) for n in _HEADER_NAMES]
        lim = [to_int(headers.get(f"anthropic-ratelimit-{n}-limit")) for n in _HEADER_NAMES]
        for i in (1, 2):  # input and output tokens
            value = rem[i]
            if value is not None and value % TOKEN_ROUNDING == 0:
                rem[i] = value + TOKEN_ROUNDING - 1
        return cls(tuple(rem), tuple(lim))  # type: ignore[arg-type]


def to_int(value: str | None) -> int | None:
    """A header's or a state field's number, None when absent or not a number."""
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


@dataclass(frozen=True)
class Reservation:
    """One admission: when the call may start, and what was reserved for it."""

    group: str
    id: str
    admitted: bool
    #: Seconds from the reservation until the call may start (the caller sleeps this).
    wait_s: float
    input_tokens: int
    output_tokens: int
    #: The chars-based input estimate before calibration (for learning the ratio).
    raw_input_tokens: int
    #: Which limit decided the start: rpm, itpm, otpm, pause or none; ``refused`` when
    #: the refusing key was set (see ``refused``).
    binding: str
    #: When the call may start, state-store clock, ms since the epoch.
    start_ms: float = 0.0
    #: The group's schedule shift when booked (see ``Limiter.drift``).
    shift: str = "0"
    #: The group's output-correction shift when booked (see ``Limiter.drift``).
    out_shift: str = "0"
    #: Whether the acquire took the call's concurrency lease (member ``id``) too.
    leased: bool = False
    #: When a lease was wanted at once and every slot was taken: seconds until the
    #: soonest lease lapses (0 otherwise).
    lapse_s: float = 0.0
    #: The refusing key's value when it refused the call ("" when it did not).
    refused: str = ""
    #: The call's max_tokens (its slot lasts as long as such a call may).
    max_tokens: int = 0

    @property
    def member(self) -> str:
        return f"{self.id}:{self.input_tokens}:{self.output_tokens}"

    @property
    def shift_ms(self) -> float:
        return float(self.shift)

"""The progress of a batch of tasks on stderr: done, failed, dollars so far, rate, ETA.

On a terminal one line, redrawn in place (at most every ``REDRAW_S``); elsewhere (a log
file, CI, a pipe) plain lines that never redraw: one at the first finish, one each time
another tenth of the batch has finished, and at least every ``EVERY_S`` on a long run,
so a log shows the run moving without thousands of lines. Counting by tenths, not by
time, also makes the plain output the same on a fast and a slow machine.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from agentjobs.cli.table import usd
from agentjobs.cli.table import width as terminal_width

#: Seconds between two redraws of the terminal line.
REDRAW_S = 0.2
#: Longest silence of the plain lines.
EVERY_S = 30.0
#: The rate is taken over the finishes of this many last seconds (the ETA follows the
#: current pace, not the run's average: a limiter pause or a scale-up shows quickly).
RATE_WINDOW_S = 60.0


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h07m``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
    """Counts a batch's outcomes as they arrive and shows them on ``stream``."""

    def __init__(
        self,
        total: int,
        label: str = "running",
        stream: IO[str] | None = None,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self.clock = clock
        self.sent = 0
        self.done = 0
        self.failed = 0
        self.timed_out = 0
        self.cost_usd = 0.0
        self.started = clock()
        self._finishes: deque[float] = deque()
        self._drawn_at = -1e18
        self._next_tenth = 1
        self._printed = -1  # the count of finishes the last plain line showed
        self._width = terminal_width()

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.timed_out

    # -- what happened ----------------------------------------------------------------

    def on_sent(self, _item: Any = None) -> None:
        self.sent += 1
        if self.tty and (self.clock() - self._drawn_at >= REDRAW_S or self.sent == self.total):
            self._draw(f"{self.label}: sending {self.sent:,}/{self.total:,}")

    def on_done(self, item: Any) -> None:
        """One item finished: ``item.status`` SUCCESS, FAILURE or TIMEOUT; its
        ``result["cost_usd"]`` counted when it has one."""
        if item.status == "SUCCESS":
            self.done += 1
        elif item.status == "TIMEOUT":
            self.timed_out += 1
        else:
            self.failed += 1
        result = getattr(item, "result", None)
        if isinstance(result, dict):
            self.cost_usd += float(result.get("cost_usd") or 0.0)
        now = self.clock()
        self._finishes.append(now)
        while self._finishes and self._finishes[0] < now - RATE_WINDOW_S:
            self._finishes.popleft()
        self._show(now)

    def close(self) -> None:
        """The last state, once; the terminal's line is ended."""
        if self.tty:
            self._draw(self.line(), force=True)
            self.stream.write("\n")
        elif self._printed != self.finished:
            self.stream.write(self.line() + "\n")  # not already the last plain line
        self.stream.flush()

    # -- what is shown ----------------------------------------------------------------

    def rate(self, now: float | None = None) -> float | None:
        """Finishes per second over the last RATE_WINDOW_S (the whole run if shorter)."""
        now = self.clock() if now is None else now
        if not self._finishes:
            return None
        span = min(RATE_WINDOW_S, now - self.started)
        return len(self._finishes) / span if span > 0 else None

    def line(self, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        parts = [f"{self.label}: {self.done:,}/{self.total:,} done", f"{self.failed:,} failed"]
        if self.timed_out:
            parts.append(f"{self.timed_out:,} timed out")
        parts.append(f"${usd(self.cost_usd)} so far")
        rate = self.rate(now)
        left = self.total - self.finished
        if rate:
            parts.append(f"{rate:.1f}/s" if rate >= 1 else f"{rate * 60:.1f}/min")
            if left:
                parts.append(f"ETA {duration(left / rate)}")
        parts.append(f"elapsed {duration(now - self.started)}")
        return ", ".join(parts)

    def _show(self, now: float) -> None:
        if self.tty:
            if now - self._drawn_at >= REDRAW_S or self.finished == self.total:
                self._draw(self.line(now))
            return
        tenth = self.finished * 10 >= self._next_tenth * self.total
        if tenth or now - self._drawn_at >= EVERY_S:
            self.stream.write(self.line(now) + "\n")
            self.stream.flush()
            self._drawn_at = now
            self._printed = self.finished
            while self._next_tenth <= 10 and self.finished * 10 >= self._next_tenth * self.total:
                self._next_tenth += 1

    def _draw(self, text: str, force: bool = False) -> None:
        # \r and erase-to-end: the line is redrawn in place; cut to the width, since a
        # wrapped line could not be redrawn.
        cut = text if len(text) < self._width else text[: self._width - 2] + "…"
        self.stream.write("\r" + cut + "\x1b[K")
        self.stream.flush()
        self._drawn_at = self.clock()

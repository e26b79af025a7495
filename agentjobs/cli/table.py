"""Plain-text tables and sparklines for the terminal, fitted to its width.

Ours, not rich's: the commands need aligned columns and a line of block characters,
nothing more, and the core install (what a web process that only calls ``.delay()``
gets) stays without rich and its dependencies. Colour only on a terminal and never
with ``NO_COLOR`` set (https://no-color.org), so piped output and tests are plain.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sys
from collections.abc import Sequence
from typing import IO

import click

#: Eight levels, lowest first; a zero is the lowest bar only when the series has
#: nothing but zeros, otherwise a space, so "nothing" and "a little" differ.
BARS = "▁▂▃▄▅▆▇█"
#: Widest we draw, even on a wide terminal: a table wider than this is hard to read.
MAX_WIDTH = 100

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def use_colour(stream: IO[str] | None = None) -> bool:
    """Colour for ``stream`` (stdout by default): a terminal, and NO_COLOR unset."""
    if os.environ.get("NO_COLOR"):
        return False
    s = stream if stream is not None else sys.stdout
    return bool(getattr(s, "isatty", lambda: False)())


def width() -> int:
    """The columns to fill: the terminal's (80 when unknown, e.g. piped), at most MAX_WIDTH."""
    return min(MAX_WIDTH, shutil.get_terminal_size((80, 24)).columns)


def visible_len(text: str) -> int:
    return len(_ANSI.sub("", text))


def _pad(text: str, n: int, right: bool) -> str:
    fill = " " * max(0, n - visible_len(text))
    return fill + text if right else text + fill


def usd(v: float) -> str:
    """Dollars to four decimals, thousands with commas, and a smaller amount that is not
    zero to two significant digits: one Haiku call costs about $0.00004, which four
    decimals would show as nothing spent."""
    if abs(v) >= 1000:
        return f"{v:,.2f}"
    if 0 < abs(v) < 0.0001:
        return f"{v:.{min(10, 1 - math.floor(math.log10(abs(v))))}f}"
    return f"{v:.4f}"


def table(
    rows: Sequence[Sequence[str]],
    header: Sequence[str] | None = None,
    right: Sequence[bool] | None = None,
    gap: int = 2,
) -> list[str]:
    """``rows`` as aligned lines: each column as wide as its widest cell (header
    included); columns marked in ``right`` right-aligned (numbers), the rest left."""
    every = [list(header)] + [list(r) for r in rows] if header else [list(r) for r in rows]
    if not every:
        return []
    ncols = max(len(r) for r in every)
    for r in every:
        r += [""] * (ncols - len(r))
    widths = [max(visible_len(r[i]) for r in every) for i in range(ncols)]
    align = list(right) if right is not None else [i > 0 for i in range(ncols)]
    align += [False] * (ncols - len(align))
    sep = " " * gap
    return [sep.join(_pad(c, widths[i], align[i]) for i, c in enumerate(r)).rstrip() for r in every]


def sparkline(values: Sequence[float], cells: int | None = None) -> str:
    """One block character per value, scaled to the series' peak; with ``cells``
    fewer than values, consecutive values are summed into each cell (oldest first)."""
    vals = [max(0.0, float(v)) for v in values]
    if cells is not None and 0 < cells < len(vals):
        per = -(-len(vals) // cells)  # ceil: every cell holds `per` values, the last fewer
        vals = [sum(vals[i : i + per]) for i in range(0, len(vals), per)]
    peak = max(vals, default=0.0)
    if peak <= 0:
        return BARS[0] * len(vals)
    out = []
    for v in vals:
        if v <= 0:
            out.append(" ")
        else:  # anything above zero shows at least the lowest bar
            out.append(BARS[min(len(BARS) - 1, int(v / peak * len(BARS) - 1e-9))])
    return "".join(out)


class Painter:
    """Styles text when colour is on, returns it unchanged when off."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def bold(self, text: str) -> str:
        return click.style(text, bold=True) if self.colour else text

    def dim(self, text: str) -> str:
        return click.style(text, dim=True) if self.colour else text

    def bad(self, text: str, when: bool = True) -> str:
        """Red when ``when`` (a non-zero failure count, a pause)."""
        return click.style(text, fg="red") if self.colour and when else text

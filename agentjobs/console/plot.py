"""Inline SVG charts of the last hours: no script, no image files, escaped labels.

The series come from the per-minute metrics (``ops/metrics.py``: one hash a minute, kept
``AGENTJOBS_METRICS_RETENTION_MIN``), summed into bins so a chart has ~60 bars.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from agentjobs.console.markup import Safe, esc, h, join
from agentjobs.ops import metrics

W, H = 540, 170
LEFT, RIGHT, TOP, BOTTOM = 56, 10, 26, 24
COLORS = ("#3b6fd4", "#d4643b", "#2f9e6b")


def _clock(bin_s: float, span_s: float) -> str:
    """How a chart names its times: days, or times of day (with the date past 12 h)."""
    if bin_s >= 86_400:
        return "%Y-%m-%d"
    return "%m-%d %H:%M" if span_s > 12 * 3600 else "%H:%M"


def _at(ts: float, fmt: str) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime(fmt)


def _fmt(v: float, unit: str) -> str:
    if unit == "$":
        return f"${v:,.4f}" if v < 10 else f"${v:,.2f}"
    if unit == "s":
        return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.1f} s"
    return f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:,.2f}"


#: Tick spacings (seconds) a time axis may use: the first giving at most 8 ticks.
_STEPS = (600, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86_400, 7 * 86_400)


def _ticks(start: float, bin_s: float, n: int, pw: float) -> Safe:
    """Marks at round times (every 10 minutes to every week, at most 8) along the time
    axis, labelled with the time of day, so a bar can be placed in time at a glance;
    the labels next to the axis's two ends are left out (the ends are labelled)."""
    span = n * bin_s
    if n < 2 or bin_s >= 86_400:
        return Safe("")
    step = next((s for s in _STEPS if span / s <= 8), _STEPS[-1])
    fmt = "%H:%M" if step < 86_400 else "%m-%d"
    marks = []
    t = (start // step + 1) * step
    while t < start + span:
        x = LEFT + pw * (t - start) / span
        label = ""
        clear = 45 if span <= 12 * 3600 else 75  # the ends' labels: 'HH:MM' or with the date
        if LEFT + clear < x < W - RIGHT - clear - 20:  # ('... UTC' at the right end)
            label = h(
                '<text x="{:.1f}" y="{}" font-size="10" text-anchor="middle" fill="#555">{}</text>',
                x,
                H - 6,
                _at(t, fmt),
            )
        marks.append(
            h(
                '<line x1="{x:.1f}" y1="{t}" x2="{x:.1f}" y2="{b}" stroke="#e3e6eb"/>'
                '<line x1="{x:.1f}" y1="{b}" x2="{x:.1f}" y2="{b4}" stroke="#999"/>{lab}',
                x=x,
                t=TOP,
                b=TOP + H - TOP - BOTTOM,
                b4=TOP + H - TOP - BOTTOM + 4,
                lab=label,
            )
        )
        t += step
    return join(marks)


def chart(
    title: str,
    start: float,
    bin_s: float,
    series: Mapping[str, Sequence[float | None]],
    unit: str = "",
) -> Safe:
    """One chart: the first series as bars, any others as lines over them; ``start`` is
    the first bin's Unix time. A value of None is a bin without data (no bar, no point).
    The SVG carries ``start`` and ``bin_s`` as data attributes (what the bars' tooltips
    and the axis say, as numbers)."""
    names = list(series)
    n = max((len(v) for v in series.values()), default=0)
    peak = max((v for vs in series.values() for v in vs if v is not None), default=0.0)
    top = peak or 1.0
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    bw = pw / max(n, 1)

    clock = _clock(bin_s, n * bin_s)

    def y(v: float) -> float:
        return TOP + ph - ph * v / top

    parts: list[Safe] = [_ticks(start, bin_s, n, pw)]  # first: the grid under the bars
    for i, v in enumerate(series[names[0]] if names else []):
        if not v:
            continue
        tip = f"{_at(start + i * bin_s, clock)} {names[0]}: {_fmt(v, unit)}"
        parts.append(
            h(
                '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
                "<title>{}</title></rect>",
                LEFT + i * bw + 0.5,
                y(v),
                max(bw - 1, 0.5),
                TOP + ph - y(v),
                COLORS[0],
                tip,
            )
        )
    for k, name in enumerate(names[1:], start=1):
        # one polyline per run of bins with data: a line drawn across a gap would show
        # values where nothing was recorded
        runs: list[list[str]] = [[]]
        for i, v in enumerate(series[name]):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{LEFT + (i + 0.5) * bw:.1f},{y(v):.1f}")
        for pts in runs:
            if len(pts) == 1:  # a lone bin: a dot, as a line of none would not show
                cx, cy = pts[0].split(",")
                parts.append(
                    h(
                        '<circle cx="{}" cy="{}" r="2" fill="{}"/>',
                        cx,
                        cy,
                        COLORS[k % len(COLORS)],
                    )
                )
            elif pts:
                parts.append(
                    h(
                        '<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6"/>',
                        " ".join(pts),
                        COLORS[k % len(COLORS)],
                    )
                )
    legend = join(
        h(
            '<text x="{}" y="14" fill="{}" font-size="11">{}</text>',
            W - RIGHT - 120 * (len(names) - k),
            COLORS[k % len(COLORS)],
            name,
        )
        for k, name in enumerate(names)
        if len(names) > 1
    )
    # a day chart names its first and last day; a time chart its start and its end
    end = start + (n - 1) * bin_s if bin_s >= 86_400 else start + n * bin_s
    axis = h(
        '<line x1="{l}" y1="{b}" x2="{r}" y2="{b}" stroke="#999"/>'
        '<text x="{l}" y="{t}" font-size="10" text-anchor="end" dx="-4" dy="8">{top}</text>'
        '<text x="{l}" y="{b}" font-size="10" text-anchor="end" dx="-4">0</text>'
        '<text x="{l}" y="{lab}" font-size="10">{a}</text>'
        '<text x="{r}" y="{lab}" font-size="10" text-anchor="end">{z} UTC</text>',
        l=LEFT,
        r=W - RIGHT,
        b=TOP + ph,
        t=TOP,
        top=_fmt(top, unit),
        lab=H - 6,
        a=_at(start, clock),
        z=_at(end, clock),
    )
    if not peak:  # say so, rather than leave a flat line at 0 to be read as "all quiet"
        parts.append(
            h(
                '<text x="{:.0f}" y="{:.0f}" font-size="12" fill="#6b7280" '
                'text-anchor="middle" class="nodata">nothing recorded in this window</text>',
                LEFT + pw / 2,
                TOP + ph / 2,
            )
        )
    return h(
        '<svg class="chart" role="img" aria-label="{}" data-start="{:.0f}" data-bin="{:.0f}" '
        'width="{}" height="{}" viewBox="0 0 {} {}" xmlns="http://www.w3.org/2000/svg">'
        '<text x="8" y="16" font-size="12" font-weight="600">{}</text>{}{}{}</svg>',
        title,
        start,
        bin_s,
        W,
        H,
        W,
        H,
        title,
        legend,
        join(parts),
        axis,
    )


class Minutes:
    """The per-minute metrics of the last ``hours``, read once, summed into bins."""

    def __init__(self, hours: float, bins: int = 60, now: float | None = None) -> None:
        retention = metrics.get_settings().metrics_retention_min
        self.minutes = max(1, min(int(hours * 60), retention))
        self.first, self.snaps = metrics.read_minutes(self.minutes, now=now)
        self.per_bin = max(1, -(-self.minutes // bins))

    @property
    def start(self) -> float:
        return float(self.first * 60)

    @property
    def bin_s(self) -> float:
        return float(self.per_bin * 60)

    def bins(self) -> list[list[metrics.Snapshot]]:
        return [self.snaps[i : i + self.per_bin] for i in range(0, len(self.snaps), self.per_bin)]

    def total(self, name: str, **where: str) -> list[float | None]:
        """A counter summed per bin."""
        return [sum(s.sum(name, **where) for s in b) for b in self.bins()]

    def waits(self, name: str, **where: str) -> dict[str, list[float | None]]:
        """A histogram's mean and p95 per bin (None where it has no observation)."""
        mean: list[float | None] = []
        p95: list[float | None] = []
        for b in self.bins():
            merged = metrics.Snapshot()
            for s in b:
                merged.merge(s)
            count = merged.sum(name, **where)
            mean.append(merged.hist_sum(name, **where) / count if count else None)
            p95.append(merged.quantile(name, 0.95, **where))
        return {"mean": mean, "p95": p95}

    def chart(
        self, title: str, values: Mapping[str, Sequence[float | None]], unit: str = ""
    ) -> Safe:
        return chart(title, self.start, self.bin_s, values, unit)

    def describe(self) -> Safe:
        return esc(f"last {self.minutes / 60:g} h, {self.per_bin}-minute bins")

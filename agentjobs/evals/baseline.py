"""Baselines: the figures of a run kept in a JSON file, and a run compared with them.

    {"version": 1, "written_at": "2026-12-01T23:40:00Z", "concurrency": 1,
     "cases": {"summary": {"p50_s": 0.31, "p95_s": 0.36, "cost_usd": 0.00042,
                           "input_tokens": 25.0, "output_tokens": 80.0, "steps": 1.0,
                           "runs": 20}}}

Two figures are gated, per case: p95 latency and cost per run. Either growing by more
than ``max_regression`` (0.2: 20%) of its baseline is a regression. Tiny absolute changes
never are (``LATENCY_SLACK_S``, ``COST_SLACK_USD``): 3 ms on a 5 ms p95 is timer noise,
not a slower product.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentjobs.errors import EvalError
from agentjobs.evals.runner import CaseResult

VERSION = 1
#: The figures that fail a run when they grow, and their units.
GATED = {"p95_s": "s", "cost_usd": "USD"}
#: Growth below these never counts, whatever the share.
LATENCY_SLACK_S = 0.010
COST_SLACK_USD = 1e-7


@dataclass
class Regression:
    """One gated figure of one case past the allowed growth."""

    case: str
    figure: str
    baseline: float
    now: float

    @property
    def change(self) -> float:
        """Growth as a share of the baseline (inf from a zero baseline)."""
        if self.baseline <= 0:
            return float("inf")
        return self.now / self.baseline - 1.0

    def text(self) -> str:
        unit = GATED.get(self.figure, "")
        grown = "new" if self.change == float("inf") else f"{self.change:+.0%}"
        return (
            f"{self.case}: {self.figure} {_num(self.now)} {unit} vs baseline "
            f"{_num(self.baseline)} {unit} ({grown})"
        )


def _num(value: float) -> str:
    return f"{value:.6f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.3f}"


def build(results: Sequence[CaseResult], concurrency: int = 1) -> dict[str, Any]:
    """A baseline of ``results``."""
    return {
        "version": VERSION,
        "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "concurrency": concurrency,
        "cases": {r.name: r.figures() for r in results},
    }


def write(path: str | Path, results: Sequence[CaseResult], concurrency: int = 1) -> None:
    p = Path(path)
    p.write_text(json.dumps(build(results, concurrency), indent=2, sort_keys=True) + "\n")


def read(path: str | Path) -> dict[str, Any]:
    """A baseline file; EvalError naming the file when it is missing or not one."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"cannot read the baseline {p}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise EvalError(f"{p}:{exc.lineno}: the baseline is not JSON: {exc.msg}") from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), dict):
        raise EvalError(f"{p}: not a baseline (no 'cases' object); write one: --write-baseline")
    if data.get("version") != VERSION:
        raise EvalError(f"{p}: baseline version {data.get('version')!r}, expected {VERSION}")
    for name, figures in data["cases"].items():
        if not isinstance(figures, dict) or not all(
            isinstance(figures.get(f), (int, float)) for f in GATED
        ):
            raise EvalError(f"{p}: case {name!r} lacks {' and '.join(GATED)}")
    return data


def compare(
    results: Sequence[CaseResult],
    baseline: dict[str, Any],
    max_regression: float = 0.2,
    concurrency: int | None = None,
) -> tuple[list[Regression], list[str]]:
    """The regressions of ``results`` against ``baseline``, and notes (a case with no
    baseline, a baseline case not run, another concurrency) that fail nothing."""
    regressions: list[Regression] = []
    notes: list[str] = []
    known = baseline["cases"]
    then = baseline.get("concurrency")
    if concurrency is not None and then is not None and then != concurrency:
        notes.append(f"the baseline ran {then} at once, this run {concurrency}: latency differs")
    for r in results:
        before = known.get(r.name)
        if before is None:
            notes.append(f"{r.name}: no baseline figures (new case): not compared")
            continue
        now = r.figures()
        for figure in GATED:
            slack = LATENCY_SLACK_S if figure == "p95_s" else COST_SLACK_USD
            b, n = float(before[figure]), float(now[figure])
            if n > b * (1.0 + max_regression) and n - b > slack:
                regressions.append(Regression(r.name, figure, b, n))
    ran = {r.name for r in results}
    for name in known:
        if name not in ran:
            notes.append(f"{name}: in the baseline, not run")
    return regressions, notes

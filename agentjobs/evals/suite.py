"""One eval run end to end: cases run, compared with a baseline, a Report.

The command (``agentjobs eval``) and the pytest hook both call ``evaluate``; what
starts the workers (the user, ``--local``, the pytest fixtures) is theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from agentjobs.evals import baseline as baselines
from agentjobs.evals.cases import Case
from agentjobs.evals.report import Report
from agentjobs.evals.runner import CaseResult, Run, run_cases


def judge(
    results: Sequence[CaseResult],
    baseline: dict[str, Any] | None,
    max_regression: float = 0.2,
    concurrency: int | None = None,
) -> Report:
    """The report of ``results`` against ``baseline`` (None: expectations only)."""
    regressions: list[baselines.Regression] = []
    notes: list[str] = []
    if baseline is not None:
        regressions, notes = baselines.compare(results, baseline, max_regression, concurrency)
    return Report(results, baseline, regressions, notes, max_regression)


def evaluate(
    cases: Sequence[Case],
    *,
    baseline: str | Path | dict[str, Any] | None = None,
    write_baseline: str | Path | None = None,
    max_regression: float = 0.2,
    concurrency: int = 1,
    submit: Callable[..., Any] | None = None,
    on_run: Callable[[Case, Run], None] | None = None,
) -> Report:
    """Run ``cases``, compare with ``baseline`` (a file or its loaded dict) and write
    ``write_baseline`` if asked. The baseline is read before anything runs, so a bad
    file fails at once."""
    known = baselines.read(baseline) if isinstance(baseline, (str, Path)) else baseline
    results = run_cases(cases, concurrency=concurrency, submit=submit, on_run=on_run)
    if write_baseline is not None:
        baselines.write(write_baseline, results, concurrency)
    return judge(results, known, max_regression, concurrency)

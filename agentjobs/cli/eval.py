"""``agentjobs eval CASES.jsonl``: run eval cases, gate p95 latency and cost on a baseline.

The cases run against the workers the broker reaches (as ``agentjobs submit`` does), or,
with ``--local``, against a private Redis, the simulator and a worker this command
starts and stops (``contrib/local.py``). The work is in ``agentjobs.evals``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentjobs.cli.context import echo_json, json_option

if TYPE_CHECKING:
    from agentjobs.evals.cases import Case
    from agentjobs.evals.report import Report
    from agentjobs.evals.runner import Run

EPILOG = """\b
Examples:
  agentjobs eval evals/cases.jsonl --local --write-baseline evals/baseline.json
  agentjobs eval evals/cases.jsonl --local --baseline evals/baseline.json --report eval.md
  agentjobs eval cases.jsonl --baseline baseline.json --max-regression 0.3 --json
  agentjobs eval cases.jsonl --local --path src   # agent modules under src/

\b
A case is one JSON line:
  {"name": "hi", "request": {"prompt": "Say hi", "model": "haiku"}, "repeat": 20,
   "expect": {"stop_reason": "end_turn", "contains": "hi", "max_cost_usd": 0.001}}
  {"name": "desk", "agent": "mymod:support", "input": "...",
   "expect": {"status": "completed", "tool_called": "lookup", "max_steps": 4}}
expect: stop_reason, status, contains, schema (JSON Schema of the text),
tool_called, tool_not_called, max_steps, max_cost_usd.  See docs/evals.md.

\b
Exit status: 0 every expectation met and no p95 or cost grew by more than
--max-regression; 1 an expectation failed or a figure regressed; 2 bad usage or a bad
cases or baseline file (nothing run).
"""


@click.command("eval", epilog=EPILOG)
@click.argument("cases_file", metavar="CASES.jsonl", type=click.Path(dir_okay=False))
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(dir_okay=False),
    help="Compare with this baseline file (JSON, written by --write-baseline).",
)
@click.option(
    "--write-baseline",
    "write_path",
    type=click.Path(dir_okay=False),
    help="Write this run's figures here as the new baseline.",
)
@click.option(
    "--max-regression",
    type=click.FloatRange(min=0),
    default=0.2,
    show_default=True,
    help="Allowed growth of a case's p95 latency or cost, as a share of its baseline.",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False),
    help="Also write the report here: Markdown (.md) or HTML (.html), with charts.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Runs of one case at a time (the baseline records it; compare like with like).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Start a private Redis, the simulator (150 ms a call) and a worker, and stop them "
    "after (needs redis-server).",
)
@click.option(
    "--path",
    "paths",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Put this folder on the import path (and the --local worker's) for agent "
    "modules; the cases file's folder always is. Repeatable.",
)
@click.option("--no-progress", is_flag=True, help="No progress line on stderr.")
@json_option("The report as JSON on stdout instead of the table.")
def eval_command(
    cases_file: str,
    baseline_path: str | None,
    write_path: str | None,
    max_regression: float,
    report_path: str | None,
    concurrency: int,
    local: bool,
    paths: tuple[str, ...],
    no_progress: bool,
    as_json: bool,
) -> None:
    """Run eval cases; fail on a failed expectation or a p95/cost regression."""
    from agentjobs.errors import EvalError
    from agentjobs.evals import baseline as baselines
    from agentjobs.evals import cases as case_file

    try:
        cases = case_file.load(cases_file)
        known = baselines.read(baseline_path) if baseline_path else None
    except EvalError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
    # Agent modules are looked up beside the cases file first, then in each --path.
    folders = [str(Path(cases_file).resolve().parent)] + [str(Path(p).resolve()) for p in paths]
    for folder in reversed(folders):
        if folder not in sys.path:
            sys.path.insert(0, folder)

    def load_agents() -> None:  # an agent that cannot be loaded fails before any run
        for c in cases:
            if c.agent is not None:
                try:
                    case_file.resolve_agent(c)
                except EvalError as exc:
                    click.echo(f"Error: {exc}", err=True)
                    sys.exit(2)

    with contextlib.ExitStack() as stack:
        if local:
            from agentjobs.contrib.local import local_services

            include = case_file.agent_modules(cases)
            _say(f"starting Redis, the simulator and a worker (modules: {include or 'none'})")
            # The agent modules are imported here before the worker starts, so what they
            # create at import (a database, say) exists before the worker imports them.
            stack.enter_context(local_services(include, folders, prepare=load_agents))
        else:
            from agentjobs.cli.context import CliContext
            from agentjobs.cli.submit import preflight

            app = CliContext().app
            preflight(app)
            if not app.control.ping(timeout=2.0, limit=1):  # returns at the first reply
                _say(
                    "no worker answered a ping within 2 s: each run waits for one (up to its "
                    "timeout_s); start workers (agentjobs worker FAMILY) or use --local"
                )
            load_agents()
        report = _run(cases, known, write_path, max_regression, concurrency, not no_progress)
    if report_path:
        report.write(report_path)
    if as_json:
        echo_json(report.as_dict())
    else:
        _print(report, write_path, report_path)
    sys.exit(0 if report.passed else 1)


def _say(msg: str) -> None:
    click.echo(click.style("eval: ", fg="cyan") + msg, err=True)


class _Done:
    """What ``Progress.on_done`` reads of a finished item, for one run."""

    def __init__(self, run: Run) -> None:
        self.status = "FAILURE" if run.failures else "SUCCESS"
        self.result = {"cost_usd": run.outcome.cost_usd}


def _run(
    cases: list[Case],
    known: dict[str, Any] | None,
    write_path: str | None,
    max_regression: float,
    concurrency: int,
    progress: bool,
) -> Report:
    from agentjobs.cli.progress import Progress
    from agentjobs.evals.suite import evaluate

    bar = Progress(sum(c.repeat for c in cases), label="eval") if progress else None

    def on_run(case: Case, run: Run) -> None:
        if bar is not None:
            bar.on_done(_Done(run))

    try:
        return evaluate(
            cases,
            baseline=known,
            write_baseline=write_path,
            max_regression=max_regression,
            concurrency=concurrency,
            on_run=on_run,
        )
    finally:
        if bar is not None:
            bar.close()


def _print(report: Report, write_path: str | None, report_path: str | None) -> None:
    from agentjobs.cli.table import Painter, table, use_colour

    paint = Painter(use_colour())
    lines = table(report.rows(), header=report.HEADER)
    click.echo(paint.bold(lines[0]))
    for line in lines[1:]:
        click.echo(paint.bad(line, "FAIL" in line))
    for note in report.notes:
        click.echo(paint.dim(f"note: {note}"))
    for reason in report.reasons():
        click.echo(paint.bad(reason))
    if write_path:
        click.echo(f"baseline written to {write_path}")
    if report_path:
        click.echo(f"report written to {report_path}")
    if report.baseline is None and not write_path:
        click.echo(paint.dim("no --baseline: expectations checked, figures not compared"))
    verdict = "passed" if report.passed else "FAILED"
    click.echo(paint.bold(f"eval {verdict}: {len(report.results)} cases"))

"""``agentjobs submit FILE``: run a JSONL file of requests and collect the results.

Each input line is one JSON object of ``complete`` keyword arguments. The whole file is
validated before anything is sent: bad lines are reported with their line numbers and
nothing is enqueued (``--skip-invalid`` sends the good ones and writes the bad ones as
error lines). Results are written in input order, one JSON line per input line:

    {"line": 1, "task_id": "...", "status": "SUCCESS", "result": {...ClaudeResult}}
    {"line": 2, "task_id": "...", "status": "FAILURE", "error": {"type": ..., "message": ...}}

Ctrl-C writes what is known so far: the unfinished lines as INTERRUPTED, with their
task id (the tasks keep running on the workers; their results stay in the result
backend), and says so on stderr (exit status 130).

The batch logic (read, send, collect, summarise) is in jobfile.py.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import click

from agentjobs.cli.context import CliContext, echo_json, fail, json_option, pass_cli, unreachable
from agentjobs.cli.jobfile import Item, interrupted, invalid_report, read_requests, run_batch


def preflight(app: Any) -> None:
    """Fail fast, with one line, when the broker or the result backend is unreachable."""
    with app.connection_for_write() as conn:
        # kombu's OperationalError: the root group names the broker
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=5)
    client = getattr(app.backend, "client", None)  # the Redis result backend's client
    if client is not None:
        try:
            client.ping()
        except Exception as exc:
            url = str(app.conf.result_backend)
            raise unreachable("result backend", url, "AGENTJOBS_RESULT_BACKEND", exc) from None


def write_results(items: list[Item], out: IO[str]) -> None:
    for item in items:
        out.write(json.dumps(item.record(), separators=(",", ":")) + "\n")


def _write_output(items: list[Item], output: str) -> None:
    if output == "-":
        write_results(items, sys.stdout)
        sys.stdout.flush()
        return
    # Written whole and renamed, so a reader never sees half a file.
    tmp = Path(output + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        write_results(items, fh)
    os.replace(tmp, output)


def _interrupted(items: list[Item], output: str, source: str) -> None:
    """Ctrl-C: the results so far written, and the user told what still runs (nothing is
    revoked: a task on a worker may be mid-call, paid for) and where its result goes."""
    sent, unsent = interrupted(items)
    _write_output(items, output)
    where = "stdout" if output == "-" else output
    from agentjobs.settings import get_settings

    ttl = get_settings().result_ttl_s
    lines = [f"interrupted: results so far written to {where}"]
    if sent:
        lines.append(
            f"  {sent} task(s) already sent are still queued or running on the workers "
            "(not cancelled): written as INTERRUPTED lines with their task_id; each "
            f"result stays in the result backend for {ttl:,} s "
            "(`celery -A agentjobs result TASK_ID`, or AsyncResult(task_id).get())"
        )
    if unsent:
        lines.append(f"  {unsent} line(s) of {source} were not sent (INTERRUPTED, no task_id)")
    click.echo("\n".join(lines), err=True)
    sys.exit(130)


@click.command(
    epilog="""\b
Examples:
  agentjobs submit examples/prompts.jsonl -o results.jsonl
  agentjobs submit prompts.jsonl -o out.jsonl --json --timeout 300 | jq .cost_usd
  echo '{"prompt": "Say hi", "model": "haiku"}' | agentjobs submit - --no-progress

\b
Each input line is a JSON object of complete() keyword arguments, e.g.
  {"prompt": "Summarise ...", "model": "sonnet", "max_tokens": 200}
Output lines: {"line", "task_id", "status": SUCCESS|FAILURE|INVALID|TIMEOUT|
INTERRUPTED, "result" (a ClaudeResult) or "error": {"type", "message"}}, in input order.
Ctrl-C writes the results so far; the tasks already sent keep running (INTERRUPTED
lines, with their task_id).
Exit status: 0 all done, 1 some failed or timed out, 2 invalid input, 130 interrupted.
"""
)
@click.argument("file", type=click.File("rb"))  # decoded line by line: bad bytes name their line
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    help="Where to write result lines ('-': stdout, and the summary goes to stderr).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the whole batch; unfinished tasks are written as TIMEOUT.",
)
@json_option("Print the summary as JSON (for scripts).")
@click.option(
    "--skip-invalid",
    is_flag=True,
    help="Send the valid lines even if some are invalid (written as INVALID lines).",
)
@click.option(
    "--progress/--no-progress",
    default=True,
    help="Progress on stderr: done, failed, dollars so far, rate, ETA (one line redrawn "
    "on a terminal; otherwise a plain line each tenth of the batch, at least every 30 s).",
)
@click.option(
    "--lane",
    type=click.Choice(["sync", "batch"]),
    help="The lane of every line that names none: batch is half price, answered within "
    "24 h (raise --timeout to match; docs/batches.md).",
)
@pass_cli
def submit(
    cli: CliContext,
    file: IO[bytes],
    output: str,
    timeout: float,
    as_json: bool,
    skip_invalid: bool,
    progress: bool,
    lane: str | None,
) -> None:
    """Run every request in FILE (JSONL; '-' for stdin) and write the results."""
    items = read_requests(file)
    if not items:
        raise click.UsageError(f"{file.name}: no requests (one JSON object per line)")
    bad = sum(1 for i in items if i.status == "INVALID")
    if bad and not skip_invalid:
        click.echo(
            f"{file.name}: {bad} of {len(items)} lines are invalid; nothing was submitted "
            f"(fix them or pass --skip-invalid):\n{invalid_report(items)}",
            err=True,
        )
        sys.exit(2)
    if lane is not None:
        for item in items:
            if item.kwargs is not None:
                item.kwargs.setdefault("lane", lane)
    if bad:
        click.echo(f"{file.name}: skipping {bad} invalid lines:\n{invalid_report(items)}", err=True)
    from redis import RedisError

    preflight(cli.app)
    try:
        summary = run_batch(items, timeout, progress=progress)
    except KeyboardInterrupt:
        _interrupted(items, output, file.name)
    except (RedisError, OSError, RuntimeError) as exc:
        # Sending reads the state store (budgets) and collecting polls the result
        # backend, so a Redis error here is not the state store's alone; RuntimeError is
        # what Celery's result consumer raises when it gives up reconnecting. (kombu's
        # OperationalError is the broker's: the root group says so.)
        raise fail(f"cannot reach the broker, state store or result backend: {exc}") from None
    _write_output(items, output)
    to_stderr = output == "-"
    if as_json:
        echo_json(summary.as_dict(), one_line=True, err=to_stderr)
    else:
        click.echo(summary.text(), err=to_stderr)
    sys.exit(0 if summary.done == summary.total - summary.invalid and not bad else 1)

"""``agentjobs dlq``: list, show, replay, purge and export dead letters."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from agentjobs import catalog
from agentjobs.cli.context import echo_json, fail, json_option
from agentjobs.errors import AgentJobsError
from agentjobs.reliability import deadletter


def _cut(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters, ending in an ellipsis where it
    was cut: a message cut mid-word without one reads as the whole message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _age(ts: float) -> str:
    s = max(0.0, time.time() - ts)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit}"
    return f"{s:.0f}s"


@click.group(
    epilog="""\b
Examples:
  agentjobs dlq list                        # newest first
  agentjobs dlq list --queue claude.opus --json
  agentjobs dlq show dl_3f2a...             # the request, the error, every attempt
  agentjobs dlq replay --all                # after fixing the cause; waits for results
  agentjobs dlq replay dl_3f2a... --no-wait
  agentjobs dlq purge --older-than 86400 --yes
  agentjobs dlq export -o dead.jsonl
  agentjobs limiter resume opus             # after raising the spend limit (or: dlq resume)
"""
)
def dlq() -> None:
    """Dead letters: tasks that gave up (permanent error, or retries used up).

    Each record holds the request, the error, every attempt, queue, worker, task id and
    idempotency key. Replay sends the request again with the same idempotency key; the
    record is removed when that task succeeds.
    """


@dlq.command("list")
@click.option("--queue", help="Only this queue (e.g. claude.haiku).")
@click.option("--error", help="Only this error class or kind (e.g. OverloadedError, bad_request).")
@click.option("--limit", default=50, show_default=True, help="At most this many (0 = all).")
@json_option()
def list_(queue: str | None, error: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, newest first."""
    recs = list(
        deadletter.records(
            limit=None if queue or error else (limit or None), queue=queue, error=error
        )
    )
    if limit:
        recs = recs[:limit]
    if as_json:
        echo_json(
            {
                "total": deadletter.count(),
                "records": [
                    {
                        "id": r.id,
                        "created_at": r.created_at,
                        "queue": r.queue,
                        "error_class": r.error_class,
                        "error_kind": r.error_kind,
                        "message": r.message,
                        "attempts": len(r.attempts),
                        "idempotency_key": r.idempotency_key,
                        "task_id": r.task_id,
                        "state": r.state,
                    }
                    for r in recs
                ],
            }
        )
        return
    if not recs:
        click.echo("no dead letters")
        return
    click.echo(f"{'ID':<28} {'AGE':>5} {'QUEUE':<14} {'TRIES':>5} {'STATE':<9} ERROR")
    for r in recs:
        click.echo(
            f"{r.id:<28} {_age(r.created_at):>5} {r.queue:<14} {len(r.attempts):>5} "
            f"{r.state:<9} {r.error_class}: {_cut(r.message, 60)}"
        )
    click.echo(f"{len(recs)} shown, {deadletter.count()} in total")


@dlq.command()
@click.argument("dead_letter_id")
@json_option()
def show(dead_letter_id: str, as_json: bool) -> None:
    """Show one dead letter whole."""
    rec = deadletter.get(dead_letter_id)
    if rec is None:
        raise fail(f"no dead letter {dead_letter_id!r} (see `agentjobs dlq list`)")
    if as_json:
        echo_json(deadletter.to_json(rec))
        return
    click.echo(f"id:              {rec.id}  ({rec.state}, replayed {rec.replays}x)")
    click.echo(f"died:            {time.ctime(rec.created_at)} ({_age(rec.created_at)} ago)")
    click.echo(f"error:           {rec.error_class} [{rec.error_kind}] {rec.status or ''}")
    click.echo(f"message:         {rec.message}")
    click.echo(f"reason:          {rec.reason}")
    click.echo(f"queue / worker:  {rec.queue} / {rec.worker}")
    click.echo(f"task id:         {rec.task_id}")
    click.echo(f"idempotency key: {rec.idempotency_key}")
    click.echo("attempts:")
    for a in rec.attempts:
        counted = "" if a.counted else " (not counted)"
        click.echo(
            f"  {a.n}. {time.strftime('%H:%M:%S', time.localtime(a.at))} "
            f"{a.error_class} [{a.kind}]{counted}: {a.message}"
        )
    click.echo("request:")
    click.echo(json.dumps(rec.request, indent=2, sort_keys=True))


def _chosen(ids: tuple[str, ...], everything: bool, queue: str | None) -> list[str]:
    if ids and everything:
        raise fail("give dead-letter ids or --all, not both")
    if not ids and not everything:
        raise fail("give dead-letter ids, or --all (optionally with --queue)")
    if ids:
        return list(ids)
    return [r.id for r in deadletter.records(queue=queue, newest_first=False)]


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every dead letter (see --queue).")
@click.option("--queue", help="With --all: only this queue.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the replayed tasks' outcomes.",
)
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait, in all.")
@json_option()
def replay(
    ids: tuple[str, ...],
    everything: bool,
    queue: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Send dead letters again, with their idempotency keys.

    Each record stays, marked replaying, until its task succeeds (the worker removes
    it); a task that fails again is dead-lettered again under the same id. An agent
    session's model step re-opens its failed session and sends the step again: the
    session goes on from there (--wait waits for it to end; succeeded = completed).
    """
    from agentjobs.agents import control
    from agentjobs.worker.tasks import complete  # the Celery app, only to send

    chosen = _chosen(ids, everything, queue)
    sent: dict[str, Any] = {}
    report: dict[str, dict[str, Any]] = {}
    for dl_id in chosen:
        try:
            sent[dl_id] = control.replay_dead_letter(dl_id, complete.apply_async)
        except KeyError:
            report[dl_id] = {"status": "unknown", "error": "no such dead letter"}
        except AgentJobsError as exc:  # the request no longer validates, a session gone on
            report[dl_id] = {"status": "refused", "error": str(exc)}
    deadline = time.monotonic() + timeout
    for dl_id, replayed in sent.items():
        entry: dict[str, Any] = {"task_id": replayed.id, "status": "sent"}
        if replayed.session_id is not None:
            entry |= {"session_id": replayed.session_id, "step": replayed.step}
            if wait:
                entry |= _session_outcome(replayed.session_id, deadline)
            report[dl_id] = entry
            continue
        res = replayed.result
        if wait:
            try:
                res.get(timeout=max(0.1, deadline - time.monotonic()), propagate=False)
                entry["status"] = "succeeded" if res.successful() else "failed"
                if not res.successful():
                    entry["error"] = str(res.result)
            except Exception as exc:  # the timeout, or the backend is unreachable
                entry["status"] = "pending"
                entry["error"] = f"{type(exc).__name__}: {exc}"
        report[dl_id] = entry
    counts: dict[str, int] = {}
    for e in report.values():
        counts[e["status"]] = counts.get(e["status"], 0) + 1
    if as_json:
        echo_json({"replayed": report, "counts": counts, "remaining": deadletter.count()})
    else:
        for dl_id, e in report.items():
            extra = f" ({_cut(e['error'], 200)})" if e.get("error") else ""
            click.echo(f"{dl_id}: {e['status']}{extra}")
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
        click.echo(f"{summary}; {deadletter.count()} dead letters remain")
    if any(e["status"] in ("failed", "refused", "unknown") for e in report.values()):
        sys.exit(1)


def _session_outcome(session_id: str, deadline: float) -> dict[str, Any]:
    """How a replayed step's session ended: succeeded (completed), failed (any other
    end, with its error), or pending (still going at the deadline)."""
    from agentjobs.agents.session import Session
    from agentjobs.errors import SessionTimeoutError

    try:
        result = Session(session_id).wait(timeout=max(0.1, deadline - time.monotonic()))
    except SessionTimeoutError as exc:
        return {"status": "pending", "error": str(exc)}
    if result["status"] == "completed":
        return {"status": "succeeded", "session_status": "completed"}
    why = result.get("error") or result.get("stop_reason") or result["status"]
    return {"status": "failed", "session_status": result["status"], "error": str(why)}


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every dead letter (see filters).")
@click.option("--queue", help="With --all: only this queue.")
@click.option("--older-than", type=float, help="With --all: only records older than this (s).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option()
def purge(
    ids: tuple[str, ...],
    everything: bool,
    queue: str | None,
    older_than: float | None,
    yes: bool,
    as_json: bool,
) -> None:
    """Delete dead letters (their keys may then be submitted again)."""
    if ids and (everything or older_than is not None or queue):
        raise fail("give dead-letter ids, or --all with filters, not both")
    if not ids and not everything:
        raise fail("give dead-letter ids, or --all (with --queue / --older-than)")
    if everything and not yes and not as_json:
        click.confirm("Delete every matching dead letter?", abort=True)
    n = deadletter.purge(ids or None, older_than_s=older_than, queue=queue)
    if as_json:
        echo_json({"purged": n, "remaining": deadletter.count()})
    else:
        click.echo(f"purged {n}; {deadletter.count()} remain")


@dlq.command()
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="File to write (default: stdout).",
)
@click.option("--queue", help="Only this queue.")
@json_option("One JSON array instead of JSON lines.")
def export(output: str | None, queue: str | None, as_json: bool) -> None:
    """Export dead letters, oldest first, as JSON lines (or one array with --json)."""
    out = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    try:
        if as_json:
            recs = [
                deadletter.to_json(r) for r in deadletter.records(queue=queue, newest_first=False)
            ]
            out.write(json.dumps(recs, indent=2) + "\n")
            n = len(recs)
        else:
            n = deadletter.export(out, queue=queue)
    finally:
        if output:
            out.close()
    if output:
        click.echo(f"exported {n} dead letters to {output}", err=True)


@dlq.command()
@click.argument("group", type=click.Choice(catalog.FAMILIES))
@json_option()
def resume(group: str, as_json: bool) -> None:
    """Alias of `agentjobs limiter resume GROUP`: lift every pause of GROUP; then replay."""
    from agentjobs.cli.limiter import resume_group

    resume_group(group, as_json)

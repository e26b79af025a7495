"""``agentjobs sessions``: agent sessions in the session store; approve, deny, cancel,
resume.

Reads go to the store ``AGENTJOBS_SESSION_STORE`` names (``agents/stores.py``);
approve, deny, cancel and resume go through ``agents/control.py``, which also enqueues what the
decision lets run (on the broker), so they need no agent or tool module loaded.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from agentjobs.agents.store import FINAL, STATUSES
from agentjobs.cli.context import echo_json, json_option
from agentjobs.cli.table import usd

#: The longest a value is shown in ``show``'s text (``--json`` shows all of it).
_WIDTH = 300


def _store() -> Any:
    from agentjobs.agents.stores import session_store

    return session_store()


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _age(ts: float | None) -> str:
    if ts is None:
        return "-"
    s = max(0.0, time.time() - ts)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit}"
    return f"{s:.0f}s"


def _short(value: Any, width: int = _WIDTH) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _status(row: dict[str, Any]) -> str:
    reason = row.get("stop_reason")
    return f"{row['status']} ({reason})" if reason else str(row["status"])


@click.group(
    epilog="""\b
Examples:
  agentjobs sessions list                          # newest first
  agentjobs sessions list --status waiting_approval --tenant acme
  agentjobs sessions show 7f3c...                  # steps, tool calls, transcript
  agentjobs sessions show 7f3c... --json | jq .tool_calls
  agentjobs sessions approve 7f3c...               # every call waiting in it
  agentjobs sessions deny 7f3c... --tool-use-id toolu_01... --reason "over the limit"
  agentjobs sessions cancel 7f3c... --reason "customer left"
  agentjobs sessions resume 7f3c...                # send again what it waits for
  AGENTJOBS_SESSION_STORE=postgresql://... agentjobs sessions migrate
  agentjobs sessions prune --dry-run               # what the retention would remove
"""
)
def sessions() -> None:
    """Agent sessions: list, show, approve, deny, cancel or resume; create the PostgreSQL
    schema; apply the retention.

    A session's record (status, steps, tool calls, transcript, cost) lives in the
    session store: the state store (Redis) by default, PostgreSQL when
    AGENTJOBS_SESSION_STORE is a postgresql:// URL (docs/agents.md).
    """


@sessions.command("list")
@click.option("--status", type=click.Choice(STATUSES), help="Only sessions in this status.")
@click.option("--agent", help="Only sessions whose current agent is this one.")
@click.option("--tenant", help="Only this tenant's sessions.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@json_option()
def list_(
    status: str | None, agent: str | None, tenant: str | None, limit: int, as_json: bool
) -> None:
    """Sessions, newest first: status, agent, steps, tool calls, cost."""
    rows = _store().list(status=status, agent=agent, tenant=tenant, limit=limit + 1)
    more = len(rows) > limit  # one more than asked for: there are others
    rows = rows[:limit]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no sessions")
        return
    if more:
        click.echo(f"the newest {limit} sessions; --limit N for more", err=True)
    table = [("SESSION", "AGENT", "TENANT", "STATUS", "STEPS", "TOOLS", "COST", "AGE")]
    for r in rows:
        table.append(
            (
                str(r["session_id"]),
                str(r.get("agent") or "-"),
                str(r.get("tenant") or "-"),
                _status(r),
                str(r["steps"]),
                str(r["tool_calls"]),
                f"${usd(r['cost_usd'])}",
                _age(r.get("created_at")),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@sessions.command("show")
@click.argument("session_id")
@json_option("The whole record as JSON.")
def show(session_id: str, as_json: bool) -> None:
    """One session: status, chain of agents, steps, tool calls and the transcript."""
    rec = _store().load(session_id)
    if as_json:
        echo_json(rec)
        return
    for line in render(rec):
        click.echo(line)


def render(rec: dict[str, Any]) -> list[str]:
    """``show``'s text for a record."""
    out = [f"session  {rec['session_id']}"]
    out.append(f"status   {_status(rec)}")
    out.append(f"agent    {rec.get('agent')}   tenant {rec.get('tenant') or '-'}")
    ended = rec.get("ended_at")
    took = f"   ({ended - rec['created_at']:.1f}s)" if ended and rec.get("created_at") else ""
    out.append(f"created  {_when(rec.get('created_at'))}   ended {_when(ended)}{took}")
    usage = rec.get("usage") or {}
    out.append(
        f"cost     ${float(rec.get('cost_usd') or 0):.6f}   tokens in "
        f"{usage.get('input_tokens', 0)}, out {usage.get('output_tokens', 0)}, cache write "
        f"{usage.get('cache_creation_input_tokens', 0)}, cache read "
        f"{usage.get('cache_read_input_tokens', 0)}"
    )
    limits = rec.get("limits") or {}
    if limits:
        out.append("limits   " + ", ".join(f"{k} {v}" for k, v in limits.items() if v is not None))
    if rec.get("output") is not None:
        out.append(f"output   {_short(rec['output'])}")
    if rec.get("error"):
        out.append(f"error    {_short(rec['error'])}")

    chain = rec.get("chain") or []
    if chain:
        out.append("")
        out.append("chain    " + " -> ".join(str(c["agent"]) for c in chain))
        for c in chain[1:]:
            payload = f": {_short(c.get('payload'), 120)}" if c.get("payload") else ""
            out.append(f"  step {c.get('step')}: {c.get('from_agent')} -> {c['agent']}{payload}")

    steps = rec.get("steps") or []
    out.append("")
    out.append(f"steps ({len(steps)})")
    for s in steps:
        u = s.get("usage") or {}
        latency = s.get("latency_s")
        response = s.get("response") or {}
        out.append(
            f"  {s.get('n')}. {s.get('agent')} {s.get('model')} {s.get('status', '')}".rstrip()
            + f"   in {u.get('input_tokens', 0)} out {u.get('output_tokens', 0)}"
            + f" cache read {u.get('cache_read_input_tokens', 0)}"
            + f"   ${float(s.get('cost_usd') or 0):.6f}"
            + (f"   {latency:.2f}s" if latency is not None else "")
            + (f"   {response['stop_reason']}" if response.get("stop_reason") else "")
            + (f"   error: {_short(s['error'], 120)}" if s.get("error") else "")
        )

    calls = rec.get("tool_calls") or []
    out.append("")
    out.append(f"tool calls ({len(calls)})")
    for c in calls:
        took = c.get("duration_s")
        out.append(
            f"  step {c.get('step')} {c.get('tool_use_id')} {c.get('name')} {c.get('status')}"
            + (f"   {took:.3f}s" if took is not None else "")
        )
        out.append(f"      input    {_short(c.get('input'))}")
        if c.get("is_error") or c.get("error"):
            out.append(f"      error    {_short(c.get('error') or c.get('content'))}")
        elif c.get("output") is not None:
            out.append(f"      output   {_short(c.get('output'))}")
        approval = c.get("approval")
        if approval:
            why = f": {approval['reason']}" if approval.get("reason") else ""
            out.append(
                f"      approval {approval.get('decision')} by {approval.get('by') or '-'}"
                f" at {_when(approval.get('at'))}{why}"
            )
        elif c.get("status") == "waiting_approval":
            out.append("      approval waiting")

    transcript = rec.get("transcript") or []
    out.append("")
    out.append(f"transcript ({len(transcript)} messages)")
    for m in transcript:
        out.extend(_message(m))
    return out


def _message(m: dict[str, Any]) -> list[str]:
    role = m.get("role")
    content = m.get("content")
    if isinstance(content, str):
        return [f"  [{role}] {_short(content)}"]
    lines = []
    for block in content or []:
        kind = block.get("type")
        if kind == "text":
            lines.append(f"  [{role}] {_short(block.get('text', ''))}")
        elif kind == "tool_use":
            lines.append(
                f"  [{role}] tool_use {block.get('name')} {block.get('id')} "
                f"{_short(block.get('input'), 200)}"
            )
        elif kind == "tool_result":
            inner = block.get("content")
            if isinstance(inner, list):
                inner = " ".join(b.get("text", "") for b in inner if isinstance(b, dict))
            error = " (error)" if block.get("is_error") else ""
            lines.append(
                f"  [{role}] tool_result {block.get('tool_use_id')}{error} {_short(inner, 200)}"
            )
        else:  # thinking, images, documents: named, not shown
            lines.append(f"  [{role}] ({kind})")
    return lines


def _decided(rec: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        echo_json(rec)
        return
    calls = rec.get("tool_calls") or []
    waiting = (
        0
        if rec.get("status") in FINAL
        else sum(1 for c in calls if c.get("status") == "waiting_approval")
    )
    more = f", {waiting} call(s) still waiting for approval" if waiting else ""
    click.echo(f"session {rec['session_id']}: {what}; now {_status(rec)}{more}")


@sessions.command("approve")
@click.argument("session_id")
@click.option("--tool-use-id", help="Only this tool call (default: every call waiting).")
@click.option("--by", help="Who approves (kept in the record).")
@json_option("The record after the approval, as JSON.")
def approve(session_id: str, tool_use_id: str | None, by: str | None, as_json: bool) -> None:
    """Approve a session's tool calls waiting for approval: they run now."""
    from agentjobs.agents import control

    rec = control.approve(session_id, tool_use_id, by=by)
    _decided(rec, as_json, f"approved {tool_use_id or 'the calls waiting'}")


@sessions.command("deny")
@click.argument("session_id")
@click.option("--tool-use-id", help="Only this tool call (default: every call waiting).")
@click.option("--reason", help="Told to the model: 'denied by the operator: REASON'.")
@click.option("--by", help="Who denies (kept in the record).")
@json_option("The record after the denial, as JSON.")
def deny(
    session_id: str, tool_use_id: str | None, reason: str | None, by: str | None, as_json: bool
) -> None:
    """Deny a session's tool calls waiting for approval: the model gets an error result."""
    from agentjobs.agents import control

    rec = control.deny(session_id, tool_use_id, reason=reason, by=by)
    _decided(rec, as_json, f"denied {tool_use_id or 'the calls waiting'}")


@sessions.command("cancel")
@click.argument("session_id")
@click.option("--reason", help="Kept in the record's error.")
@json_option("The record after the cancel, as JSON.")
def cancel(session_id: str, reason: str | None, as_json: bool) -> None:
    """End a session as cancelled: what runs now finishes, nothing after it starts."""
    from agentjobs.agents import control

    rec = control.cancel(session_id, reason=reason)
    _decided(rec, as_json, "cancelled")


@sessions.command("resume")
@click.argument("session_id")
@json_option("The record after the resume, as JSON.")
def resume(session_id: str, as_json: bool) -> None:
    """Send again what a session waits for: its step in flight or due, its tool calls
    not yet answered.

    For a message lost outside the broker's redelivery (workers' sweep does it by
    itself for sessions stalled past AGENTJOBS_LEDGER_GRACE_S). Harmless when nothing
    was lost: a model step's claim lets one copy call, the others take its answer.
    """
    from agentjobs.agents import control

    rec = control.resume(session_id, by="cli")
    _decided(rec, as_json, f"resumed (step {rec.get('turn') or rec.get('next_step')})")


@sessions.command("migrate")
@json_option()
def migrate(as_json: bool) -> None:
    """Create the session store's schema (PostgreSQL); safe to run again."""
    from agentjobs.settings import get_settings

    store = _store()
    store.migrate()
    url = get_settings().session_store
    if url:
        from agentjobs.agents.postgres_store import masked

        where, note = f"PostgreSQL {masked(url)}", "schema ready"
    else:
        where, note = "the state store (Redis)", "nothing to create"
    if as_json:
        echo_json({"store": "postgresql" if url else "redis", "migrated": bool(url)})
        return
    click.echo(f"session store: {where}: {note}")


@sessions.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
@json_option()
def prune(dry_run: bool, as_json: bool) -> None:
    """Remove the ended sessions whose last write is older than
    AGENTJOBS_SESSION_RETENTION_S (in PostgreSQL with their checkpoint history).

    Workers do it by themselves every hour; this is for now: after lowering the
    retention, or to see what it would remove. A session running or waiting for
    approval is never removed.
    """
    from agentjobs.agents import retention
    from agentjobs.settings import get_settings

    done = retention.prune(dry_run=dry_run)
    if as_json:
        echo_json({**done.as_dict(), "dry_run": dry_run})
        return
    days = f"{get_settings().session_retention_s / 86_400:g}"
    verb = "would remove" if dry_run else "removed"
    if not get_settings().session_store:  # Redis: the records expire by their TTL
        click.echo(
            f"the state store expires ended sessions {days} day(s) after their last write;"
            f" {verb} {done.sessions} expired id(s) from its indexes"
        )
        return
    click.echo(
        f"{verb} {done.sessions} session(s) ended and unchanged for {days} day(s), with"
        f" {done.checkpoints} checkpoint row(s)"
    )

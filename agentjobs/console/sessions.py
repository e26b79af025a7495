"""Agent sessions: list, one session's transcript, steps and tool calls, and the
approve / deny / cancel actions (``agents/control.py``, as ``agentjobs sessions`` does)."""

from __future__ import annotations

import json
import time
from typing import Any

from agentjobs.console.markup import (
    Safe,
    age,
    form,
    h,
    join,
    link,
    page,
    pairs,
    pre_json,
    table,
    usd,
    when,
)
from agentjobs.console.web import BadQuery, Request, Response, redirect, whole_number
from agentjobs.errors import AgentJobsError

STATUSES = ("running", "waiting_approval", "completed", "stopped", "failed", "cancelled")
#: Rows of the list by default, and the most one page asks for.
ROWS, MAX_ROWS = 200, 5000


def _store() -> Any:
    from agentjobs.agents.stores import session_store

    return session_store()


def list_page(request: Request) -> Response:
    status = request.query.get("status") or None
    if status not in (None, *STATUSES):
        raise BadQuery(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    limit = whole_number(request.query, "limit", ROWS, 1, MAX_ROWS)
    rows = _store().list(status=status, limit=limit + 1)  # one more: are there others?
    more = len(rows) > limit
    rows = rows[:limit]
    now = time.time()
    table_rows = [
        [
            link(request, f"/sessions/{r['session_id']}", r["session_id"]),
            r.get("agent") or "",
            r.get("tenant") or "",
            r.get("status") or "",
            r.get("stop_reason") or "",
            r.get("steps", 0),
            r.get("tool_calls", 0),
            usd(float(r.get("cost_usd") or 0.0)),
            age(r.get("created_at"), now),
            age(r.get("updated_at"), now),
        ]
        for r in rows
    ]
    picker = join(
        (
            h("<b>{}</b>", s or "all")
            if s == status
            else link(request, "/sessions", s or "all", **({"status": s} if s else {}))
        )
        for s in (None, *STATUSES)
    )
    cut = (
        h(
            '<p class="muted">the newest {} are shown: {}</p>',
            limit,
            link(
                request,
                "/sessions",
                f"show up to {min(limit * 5, MAX_ROWS)}",
                limit=str(min(limit * 5, MAX_ROWS)),
                **({"status": status} if status else {}),
            )
            if limit < MAX_ROWS
            else "pick a status to narrow them",
        )
        if more
        else h("")
    )
    body = h(
        "<p>{}</p>{}{}",
        picker,
        cut,
        table(
            [
                "session",
                "agent",
                "tenant",
                "status",
                "stop reason",
                "steps",
                "tool calls",
                "cost",
                "age",
                "updated",
            ],
            table_rows,
            empty="no sessions",
        ),
    )
    return Response(body=page(request, "Agent sessions", body, section="/sessions"))


def _block(block: Any) -> Safe:
    """One content block of a message, as a person reads it."""
    if isinstance(block, str):
        return h("<pre>{}</pre>", block)
    kind = block.get("type")
    if kind == "text":
        return h("<pre>{}</pre>", block.get("text", ""))
    if kind == "tool_use":
        return h(
            '<p><b>tool_use</b> {} <span class="muted">{}</span></p><pre>{}</pre>',
            block.get("name"),
            block.get("id"),
            json.dumps(block.get("input"), indent=2, default=str),
        )
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, list):
            content = "\n".join(c.get("text", json.dumps(c)) for c in content)
        err = " (error)" if block.get("is_error") else ""
        return h(
            '<p><b>tool_result</b>{} <span class="muted">{}</span></p><pre>{}</pre>',
            err,
            block.get("tool_use_id"),
            content,
        )
    return h("<p><b>{}</b></p>{}", kind, pre_json(block))


def _transcript(messages: list[Any]) -> Safe:
    out = []
    for i, msg in enumerate(messages):
        content = msg.get("content")
        blocks = content if isinstance(content, list) else [content or ""]
        out.append(
            h(
                '<div class="msg"><h3>{}. {}</h3>{}</div>',
                i + 1,
                msg.get("role"),
                join(_block(b) for b in blocks),
            )
        )
    return join(out) if out else h('<p class="empty">{}</p>', "no messages yet")


def _approvals(request: Request, record: dict[str, Any]) -> Safe:
    waiting = [c for c in record.get("tool_calls") or [] if c.get("status") == "waiting_approval"]
    out = []
    sid = record["session_id"]
    for c in waiting:
        reason = Safe('<input name="reason" placeholder="reason" aria-label="reason"> ')
        out.append(
            h(
                '<div class="approval"><p>Tool <b>{}</b> ({}) waits for approval; input:</p>'
                "{}<p>{}{}</p></div>",
                c.get("name"),
                c.get("tool_use_id"),
                pre_json(c.get("input")),
                form(
                    request,
                    f"/sessions/{sid}/approve",
                    "approve",
                    {"tool_use_id": c.get("tool_use_id") or ""},
                ),
                form(
                    request,
                    f"/sessions/{sid}/deny",
                    "deny",
                    {"tool_use_id": c.get("tool_use_id") or ""},
                    danger=True,
                    extra=reason,
                ),
            )
        )
    if not out:
        return Safe("")
    return h("<h2>Waiting for approval</h2>{}", join(out))


def show_page(request: Request, session_id: str) -> Response:
    record = _store().get(session_id)
    if record is None:
        body = h("<p>no session {} (or it outlived the store's retention)</p>", session_id)
        return Response(404, page(request, "Session", body, section="/sessions"))
    usage = record.get("usage") or {}
    facts = pairs(
        [
            ("session", record["session_id"]),
            ("agent", record.get("agent")),
            ("tenant", record.get("tenant") or ""),
            ("status", record.get("status")),
            ("stop reason", record.get("stop_reason") or ""),
            ("error", record.get("error") or ""),
            ("cost", usd(float(record.get("cost_usd") or 0.0))),
            (
                "tokens in / out",
                f"{usage.get('input_tokens', 0)} / {usage.get('output_tokens', 0)}",
            ),
            ("created (UTC)", when(record.get("created_at"))),
            ("updated (UTC)", when(record.get("updated_at"))),
            ("ended (UTC)", when(record.get("ended_at"))),
            ("limits", json.dumps(record.get("limits") or {}, sort_keys=True)),
        ]
    )
    steps = table(
        ["#", "agent", "model", "stop reason", "input tok", "output tok", "cost", "latency s"],
        [
            [
                s.get("n"),
                s.get("agent"),
                s.get("model"),
                (s.get("response") or {}).get("stop_reason") or "",
                (s.get("usage") or {}).get("input_tokens", 0),
                (s.get("usage") or {}).get("output_tokens", 0),
                usd(float(s.get("cost_usd") or 0.0)),
                s.get("latency_s") or "",
            ]
            for s in record.get("steps") or []
        ],
        empty="no step yet",
    )
    calls = table(
        ["step", "tool", "id", "status", "kind", "approval", "output / error"],
        [
            [
                c.get("step"),
                c.get("name"),
                c.get("tool_use_id"),
                c.get("status"),
                c.get("kind") or "",
                _approval_text(c.get("approval")),
                str(c.get("error") or c.get("output") or "")[:200],
            ]
            for c in record.get("tool_calls") or []
        ],
        empty="no tool call",
    )
    final = record.get("status") in ("completed", "stopped", "failed", "cancelled")
    cancel = (
        Safe("")
        if final
        else form(request, f"/sessions/{session_id}/cancel", "cancel session", danger=True)
    )
    output = record.get("output")
    body = h(
        "{}<p>{}</p>{}{}<h2>Transcript</h2>{}<h2>Steps</h2>{}<h2>Tool calls</h2>{}",
        _approvals(request, record),
        cancel,
        facts,
        h("<h2>Output</h2><pre>{}</pre>", output) if output else "",
        _transcript(record.get("transcript") or []),
        steps,
        calls,
    )
    return Response(body=page(request, f"Session {session_id}", body, section="/sessions"))


def _approval_text(approval: Any) -> str:
    if not approval:
        return ""
    by = f" by {approval.get('by')}" if approval.get("by") else ""
    reason = f": {approval.get('reason')}" if approval.get("reason") else ""
    return f"{approval.get('decision')}{by}{reason}"


def act(request: Request, session_id: str, action: str) -> Response:
    """POST: approve, deny or cancel (``agents/control.py``); back to the session."""
    from agentjobs.agents import control

    tool_use_id = request.form.get("tool_use_id") or None
    by = request.user or "console"
    reason = request.form.get("reason") or None
    back = f"/sessions/{session_id}"
    try:
        if action == "approve":
            control.approve(session_id, tool_use_id, by=by)
        elif action == "deny":
            control.deny(session_id, tool_use_id, reason=reason, by=by)
        else:
            control.cancel(session_id, reason=reason or f"cancelled from the console by {by}")
    except AgentJobsError as exc:
        return redirect(request.url(back, problem=str(exc)))
    done = {"approve": "approved", "deny": "denied", "cancel": "cancelled"}[action]
    return redirect(request.url(back, done=f"{done} ({tool_use_id or session_id})"))

"""Dead-letter pages: list, show, replay, purge (what ``agentjobs dlq`` does, in the
browser; both call ``reliability/deadletter.py``, and replay ``agents/control.py``'s
``replay_dead_letter``, which re-opens the failed session of an agent step's)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentjobs.agents import control
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
    when,
)
from agentjobs.console.web import Request, Response, redirect
from agentjobs.errors import AgentJobsError
from agentjobs.reliability import deadletter

#: Rows on the list page (the CLI's --limit 0 lists them all).
LIST_LIMIT = 200


def list_page(request: Request) -> Response:
    queue = request.query.get("queue") or None
    error = request.query.get("error") or None
    recs = list(
        deadletter.records(limit=None if queue or error else LIST_LIMIT, queue=queue, error=error)
    )[:LIST_LIMIT]
    now = time.time()
    rows = [
        [
            link(request, f"/deadletters/{r.id}", r.id),
            age(r.created_at, now),
            r.queue,
            len(r.attempts),
            r.state,
            f"{r.error_class} [{r.error_kind}]",
            r.message[:120],
            form(request, "/deadletters/replay", "replay", {"id": r.id}),
        ]
        for r in recs
    ]
    total = deadletter.count()
    filters = h(
        '<form method="get" action="{}" class="inline">'
        '<input name="queue" placeholder="queue (claude.haiku)" value="{}"> '
        '<input name="error" placeholder="error class or kind" value="{}"> '
        "<button>filter</button></form>",
        request.url("/deadletters"),
        queue or "",
        error or "",
    )
    # the bulk actions act on what the filters show (all of it, past the list's limit)
    scope = {k: v for k, v in (("queue", queue), ("error", error)) if v}
    which = " matching" if scope else ""
    bulk = (
        join(
            [
                form(
                    request,
                    "/deadletters/replay",
                    f"replay all{which}",
                    {"all": "1", **scope},
                ),
                form(
                    request,
                    "/deadletters/purge",
                    f"purge all{which}",
                    {"all": "1", **scope},
                    danger=True,
                    extra=Safe(
                        '<label><input type="checkbox" name="confirm" value="1"> sure</label> '
                    ),
                ),
            ]
        )
        if recs
        else Safe("")
    )
    body = h(
        "{}<p>{} shown, {} in total. A replay sends the request again with its idempotency "
        "key; the record goes when that task succeeds. An agent step's re-opens its failed "
        "session, which goes on from that step.</p><p>{}</p><p>{}</p>{}",
        _reopened(request),
        len(rows),
        total,
        filters,
        bulk,
        table(
            ["id", "age", "queue", "tries", "state", "error", "message", ""],
            rows,
            empty="no dead letters",
        ),
    )
    return Response(body=page(request, "Dead letters", body, section="/deadletters"))


def show_page(request: Request, dl_id: str) -> Response:
    rec = deadletter.get(dl_id)
    if rec is None:
        body = h("<p>no dead letter {} (it was replayed, purged or expired)</p>", dl_id)
        return Response(404, page(request, "Dead letter", body, section="/deadletters"))
    now = time.time()
    facts = pairs(
        [
            ("id", f"{rec.id} ({rec.state}, replayed {rec.replays}x)"),
            ("died", f"{when(rec.created_at)} UTC ({age(rec.created_at, now)} ago)"),
            ("error", f"{rec.error_class} [{rec.error_kind}] {rec.status or ''}"),
            ("message", rec.message),
            ("reason", rec.reason),
            ("queue / worker", f"{rec.queue} / {rec.worker}"),
            ("task id", rec.task_id),
            ("replay task id", rec.replay_task_id or ""),
            ("idempotency key", rec.idempotency_key),
        ]
    )
    attempts = table(
        ["#", "at (UTC)", "error", "kind", "status", "counted", "message"],
        [
            [
                a.n,
                when(a.at),
                a.error_class,
                a.kind,
                a.status or "",
                "yes" if a.counted else "no",
                a.message[:300],
            ]
            for a in rec.attempts
        ],
    )
    actions = join(
        [
            form(request, "/deadletters/replay", "replay", {"id": rec.id}),
            form(request, "/deadletters/purge", "purge", {"id": rec.id}, danger=True),
        ]
    )
    body = h(
        "<p>{}</p>{}<h2>Attempts</h2>{}<h2>Request</h2>{}",
        actions,
        facts,
        attempts,
        pre_json(rec.request),
    )
    return Response(body=page(request, f"Dead letter {rec.id}", body, section="/deadletters"))


def _reopened(request: Request) -> Safe:
    """Links to the sessions the last replay re-opened (its redirect's ``reopened``)."""
    sids = [s for s in (request.query.get("reopened") or "").split(",") if s]
    if not sids:
        return Safe("")
    return h(
        '<p class="flash" id="reopened">re-opened: {}</p>',
        join(link(request, f"/sessions/{sid}", f"session {sid}") for sid in sids[:20]),
    )


def _chosen(request: Request) -> list[str]:
    """The ids a POST names: one (``id``), or all that its ``queue`` and ``error``
    filters match (``all=1``: the list page's bulk forms carry its filters)."""
    if request.form.get("all") == "1":
        queue = request.form.get("queue") or None
        error = request.form.get("error") or None
        return [r.id for r in deadletter.records(queue=queue, error=error, newest_first=False)]
    dl_id = request.form.get("id", "")
    return [dl_id] if dl_id else []


def replay(request: Request, submit: Callable[..., Any]) -> Response:
    """POST: send the chosen dead letters again (``control.replay_dead_letter`` with
    ``submit``, the task's ``apply_async``, as ``agentjobs dlq replay`` does: an agent
    step's re-opens its session, linked from the page); the outcome shows later."""
    sent, problems, reopened = [], [], []
    for dl_id in _chosen(request):
        try:
            res = control.replay_dead_letter(dl_id, submit)
        except KeyError:
            problems.append(f"{dl_id}: no such dead letter")
            continue
        except AgentJobsError as exc:  # the request no longer validates, a session gone on
            problems.append(f"{dl_id}: {exc}")
            continue
        if res.session_id is None:
            sent.append(f"{dl_id} as task {res.id}")
        else:
            sent.append(f"{dl_id} as task {res.id} (session {res.session_id} step {res.step})")
            reopened.append(res.session_id)
    query = {}
    if sent:
        query["done"] = (
            f"replayed {len(sent)}: " + ", ".join(sent[:5]) + (" ..." if len(sent) > 5 else "")
        )
    if reopened:
        query["reopened"] = ",".join(reopened)
    if problems or not sent:
        query["problem"] = "; ".join(problems) or "nothing to replay"
    back = "/deadletters"
    if request.form.get("id") and not sent:
        back = f"/deadletters/{request.form['id']}"
    return redirect(request.url(back, **query))


def purge(request: Request) -> Response:
    """POST: delete one dead letter, or all that the list's filters match when confirmed."""
    if request.form.get("all") == "1":
        if request.form.get("confirm") != "1":
            return redirect(request.url("/deadletters", problem="tick 'sure' to purge them all"))
        n = deadletter.purge(_chosen(request))
    else:
        dl_id = request.form.get("id", "")
        n = deadletter.purge([dl_id]) if dl_id else 0
    return redirect(request.url("/deadletters", done=f"purged {n}; {deadletter.count()} remain"))

"""The global limiter per rate-limit group: capacity in each dimension, leases, waits,
pauses (``agentjobs limiter show``), with pause and resume as POSTs."""

from __future__ import annotations

from agentjobs import catalog
from agentjobs.console.markup import Safe, form, h, join, page, table
from agentjobs.console.overview import hours_of, hours_picker
from agentjobs.console.plot import Minutes
from agentjobs.console.web import Request, Response, redirect
from agentjobs.limiter import pause as pauses
from agentjobs.limiter.admission import get_limiter


def limiter_page(request: Request) -> Response:
    lim = get_limiter()
    hours = hours_of(request)
    m = Minutes(hours)
    groups = []
    for g in catalog.FAMILIES:
        snap = lim.snapshot(g)
        active = pauses.active(g, lim)
        dims = table(
            [
                "dimension",
                "limit",
                "configured",
                "server says",
                "available",
                "capacity",
                "booked ahead (s)",
            ],
            [
                [
                    dim,
                    d["limit"],
                    d["configured"],
                    d["server_limit"] or "",
                    d["available"],
                    d["capacity"],
                    d["booked_ahead_s"],
                ]
                for dim, d in snap["dimensions"].items()
            ],
        )
        counters = table(
            [
                "leases",
                "admitted",
                "deferred",
                "429s",
                "pull-backs",
                "mean wait (ms)",
                "input ratio",
                "output estimate",
            ],
            [
                [
                    f"{snap['leases']}/{snap['concurrency']}",
                    snap["admitted"],
                    snap["deferred"],
                    snap["rate_limited"],
                    snap["pullbacks"],
                    snap["mean_wait_ms"],
                    snap["input_ratio"],
                    round(snap["output_estimate"]),
                ]
            ],
        )
        paused = join(h('<p class="paused">PAUSED: {}</p>', p.describe()) for p in active)
        actions = join(
            [
                form(request, "/limiter/resume", "resume", {"group": g}) if active else Safe(""),
                form(
                    request,
                    "/limiter/pause",
                    "pause",
                    {"group": g},
                    extra=Safe(
                        '<input name="seconds" size="5" value="60" aria-label="seconds"> s '
                    ),
                    danger=True,
                ),
            ]
        )
        q = catalog.queue_for(g)
        charts = join(
            [
                m.chart(f"{g}: limiter wait", m.waits("limiter_wait_seconds", queue=q), "s"),
                m.chart(f"{g}: 429s", {"429s": m.total("rate_limited", queue=q)}),
            ]
        )
        groups.append(
            h(
                '<section id="{}"><h2>{}</h2>{}<p>{}</p>{}{}<div class="charts">{}</div></section>',
                g,
                g,
                paused,
                actions,
                dims,
                counters,
                charts,
            )
        )
    body = h(
        "<p>API key fingerprint {}. Available below zero means booked ahead: calls wait "
        "their turn. A spend-limit pause refuses calls (dead letters to replay); a 429's "
        "or an operator's pause holds them back.</p><p>{} &middot; {}</p>{}",
        lim.key_fingerprint,
        m.describe(),
        hours_picker(request, "/limiter", hours),
        join(groups),
    )
    return Response(body=page(request, "Limiter", body, section="/limiter"))


def _group(request: Request) -> str | None:
    g = request.form.get("group", "")
    return g if g in catalog.FAMILIES else None


def resume(request: Request) -> Response:
    """POST: lift every pause of a group (``agentjobs limiter resume``)."""
    g = _group(request)
    if g is None:
        return redirect(request.url("/limiter", problem="unknown group"))
    lifted = pauses.resume(g, get_limiter())
    text = "; ".join(p.describe() for p in lifted) or "it was not paused"
    return redirect(request.url("/limiter", done=f"{g}: lifted {text}"))


def pause(request: Request) -> Response:
    """POST: hold a group's new calls back for some seconds (``agentjobs limiter pause``)."""
    g = _group(request)
    try:
        seconds = float(request.form.get("seconds", ""))
    except ValueError:
        seconds = 0.0
    if g is None or not 0 < seconds <= 86_400:
        return redirect(request.url("/limiter", problem="give a group and 0 < seconds <= 86400"))
    who = f" by {request.user}" if request.user else ""
    get_limiter().pause(g, seconds, f"paused from the console{who}")
    return redirect(request.url("/limiter", done=f"{g}: paused for {seconds:g}s"))

"""HTML for the console: escaping by default, the page frame, tables, forms.

Everything that is not a ``Safe`` string is escaped when it enters HTML: dead letters
and transcripts hold user text. Building blocks return ``Safe``; a page composes them
with :func:`h` (a template whose arguments are escaped) and :func:`join`.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from agentjobs.console.web import Request


class Safe(str):
    """Text that is HTML already (built here, its parts escaped)."""


def esc(value: Any) -> Safe:
    if isinstance(value, Safe):
        return value
    return Safe(html.escape("" if value is None else str(value), quote=True))


def _arg(value: Any) -> Any:
    # numbers pass as numbers (no markup in them), so a template may format them: {:.1f}
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return esc(value)


def h(template: str, *args: Any, **kwargs: Any) -> Safe:
    """``template.format(...)`` with every argument escaped (``Safe`` ones as they are)."""
    return Safe(
        template.format(*(_arg(a) for a in args), **{k: _arg(v) for k, v in kwargs.items()})
    )


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    return Safe(sep.join(esc(p) for p in parts))


def when(ts: float | None) -> str:
    """A Unix time as UTC, to the second."""
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def age(ts: float | None, now: float) -> str:
    if not ts:
        return ""
    s = max(0.0, now - ts)
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if s >= size:
            return f"{s / size:.0f}{unit}"
    return f"{s:.0f}s"


def usd(value: float) -> str:
    return f"${value:,.4f}"


def link(request: Request, path: str, text: Any, **query: str) -> Safe:
    return h('<a href="{}">{}</a>', request.url(path, **query), text)


def table(head: Sequence[str], rows: Iterable[Sequence[Any]], empty: str = "nothing") -> Safe:
    """A table; cells escaped unless ``Safe``; numbers right-aligned."""
    body = []
    for row in rows:
        cells = []
        for cell in row:
            if isinstance(cell, int | float) and not isinstance(cell, bool):
                text = f"{cell:,}" if isinstance(cell, int) else f"{cell:,.6g}"
                cells.append(h('<td class="num">{}</td>', text))
            else:
                cells.append(h("<td>{}</td>", cell))
        body.append(h("<tr>{}</tr>", join(cells)))
    if not body:
        return h('<p class="empty">{}</p>', empty)
    header = join(h("<th>{}</th>", c) for c in head)
    return h("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", header, join(body))


def pairs(items: Iterable[tuple[str, Any]]) -> Safe:
    """A two-column table of name and value."""
    rows = join(h("<tr><th>{}</th><td>{}</td></tr>", k, v) for k, v in items)
    return h('<table class="pairs">{}</table>', rows)


def pre_json(value: Any) -> Safe:
    return h("<pre>{}</pre>", json.dumps(value, indent=2, sort_keys=True, default=str))


def form(
    request: Request,
    action: str,
    button: str,
    fields: dict[str, str] | None = None,
    *,
    danger: bool = False,
    extra: Safe | None = None,
) -> Safe:
    """A POST form with the CSRF token, hidden ``fields`` and one button."""
    hidden = [h('<input type="hidden" name="csrf_token" value="{}">', request.csrf_token)]
    hidden += [
        h('<input type="hidden" name="{}" value="{}">', k, v) for k, v in (fields or {}).items()
    ]
    cls = "danger" if danger else ""
    return h(
        '<form method="post" action="{}" class="inline">{}{}<button class="{}">{}</button></form>',
        request.url(action),
        join(hidden),
        extra or "",
        cls,
        button,
    )


NAV = (
    ("/", "overview"),
    ("/deadletters", "dead letters"),
    ("/sessions", "sessions"),
    ("/batches", "batches"),
    ("/cost", "cost"),
    ("/limiter", "limiter"),
)

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px;display:flex;gap:22px;align-items:center}
header b{font-size:16px;margin-right:12px}header a{color:#c9d3e6;text-decoration:none}
header a.on{color:#fff;border-bottom:2px solid #7fb2ff}
main{padding:16px 24px;max-width:1200px}h1{font-size:20px;margin:6px 0 14px}
h2{font-size:16px;margin:22px 0 8px}h3{font-size:14px;margin:12px 0 4px}
table{border-collapse:collapse;background:#fff;margin:4px 0 12px;min-width:50%}
th,td{border-bottom:1px solid #e3e6eb;padding:5px 10px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
table.pairs th{width:170px}pre{background:#fff;border:1px solid #e3e6eb;padding:10px;
overflow:auto;max-height:480px;white-space:pre-wrap;word-break:break-word}
.charts{display:flex;flex-wrap:wrap;gap:14px}.chart{background:#fff;border:1px solid #e3e6eb}
form.inline{display:inline-block;margin:0 6px 0 0}button{padding:3px 10px;cursor:pointer}
button.danger{color:#a3161b}.flash{background:#e8f4e8;border:1px solid #9c9;padding:8px 12px}
.error{background:#fbeaea;border:1px solid #d99;padding:8px 12px}.empty{color:#6b7280}
.paused{color:#a3161b;font-weight:600}.muted{color:#6b7280}
"""


def page(request: Request, title: str, body: Safe, *, section: str) -> Safe:
    """The whole page: the navigation, a message left by the last action, the body."""
    nav = join(
        h('<a href="{}" class="{}">{}</a>', request.url(p), "on" if p == section else "", name)
        for p, name in NAV
    )
    notes = []
    if request.query.get("done"):
        notes.append(h('<p class="flash" role="status">{}</p>', request.query["done"]))
    if request.query.get("problem"):
        notes.append(h('<p class="error" role="alert">{}</p>', request.query["problem"]))
    return h(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # no icon: said here, or every page's load asks for /favicon.ico and logs a 404
        '<link rel="icon" href="data:,">'
        "<title>{} - agentjobs console</title><style>{}</style></head><body>"
        "<header><b>agentjobs</b>{}</header><main><h1>{}</h1>{}{}</main></body></html>",
        title,
        Safe(_CSS),
        nav,
        title,
        join(notes),
        body,
    )
